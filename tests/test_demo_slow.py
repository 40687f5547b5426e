"""The bundled real models end to end (opt in: pytest -m slow). Takes a few minutes."""

import pytest

from framework.cli.demo import run_demo
from framework.records import ANSWER_MODES


@pytest.mark.slow
def test_demo_pipeline_with_bundled_models(tmp_path):
    result = run_demo(workspace=tmp_path / "ws", overrides=["finetune.max_steps=8", "generator.max_new_tokens=24"],
                      say=lambda s: None, show_progress=False)
    results = result["result"].to_dict()
    assert set(results) == set(ANSWER_MODES) and result["result"].report.is_file()
    for mode, row in results.items():
        assert row["questions"] == 40 and 0 <= row["token_f1"] <= 1
        assert all(a["text"] for a in row["answers"]), f"{mode} produced an empty answer"
    assert results["rag"]["retrieval_hit_rate"] >= 0.6
    assert results["rag"]["answer_recall"] > results["prompt_only"]["answer_recall"]
    from framework.runtime.models import resolve_generator

    assert (resolve_generator("bundled") / "model.safetensors").is_file()
