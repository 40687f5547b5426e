"""The bundled real models end to end (opt in: pytest -m slow). Takes a few minutes."""

import pytest

from framework.demo_run import MODES, run_demo


@pytest.mark.slow
def test_demo_pipeline_with_bundled_models(tmp_path):
    result = run_demo(workspace=tmp_path / "ws", overrides=["finetune.max_steps=8", "generator.max_new_tokens=24"],
                      say=lambda s: None, show_progress=False)
    results = result["results"]
    assert set(results) == set(MODES)
    for mode, row in results.items():
        assert row["questions"] == 40 and 0 <= row["token_f1"] <= 1
        assert all(a["text"] for a in row["answers"]), f"{mode} produced an empty answer"
    assert results["rag"]["retrieval_hit_rate"] >= 0.6
    assert results["rag"]["answer_recall"] > results["prompt_only"]["answer_recall"]
    assert (tmp_path / "ws" / "models" / "SmolLM2-135M-Instruct" / "model.safetensors").is_file()
