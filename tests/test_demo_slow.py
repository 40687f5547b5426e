"""The bundled real models end to end (opt in: pytest -m slow). Takes a few minutes."""

import pytest

from framework.cli.demo import run_demo
from framework.records import ANSWER_MODES


@pytest.mark.slow
def test_demo_pipeline_with_bundled_models(tmp_path):
    result = run_demo(workspace=tmp_path / "ws", overrides=["finetune.max_steps=8", "generator.max_new_tokens=24"],
                      say=lambda s: None, show_progress=False)
    evaluation = result["result"]
    results = evaluation.to_dict()["results"]
    assert set(results) == set(ANSWER_MODES) and evaluation.report.is_file()
    for mode, row in results.items():
        assert row["questions"] == 40 and 0 <= row["metrics"]["token_f1"]["value"] <= 1
        assert all(a["text"] for a in row["answers"]), f"{mode} produced an empty answer"
    assert evaluation.scores("rag")["retrieval_hit"] >= 0.6
    assert evaluation.scores("rag")["answer_recall"] > evaluation.scores("prompt_only")["answer_recall"]
    assert 0 <= evaluation.scores("rag")["semantic_similarity"] <= 1  # the bundled embedder scored it
    from framework.runtime.models import resolve_generator

    assert (resolve_generator("bundled") / "model.safetensors").is_file()
