import pytest
import torch

from framework.project import Project, load_config_dict
from framework.runtime.models import ModelNotFoundError, resolve_embedder, resolve_generator
from framework.runtime.precision import resolve_dtype


def test_missing_generator_names_the_config_key(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"generator.model: no model at .*never downloads"):
        resolve_generator(str(tmp_path / "nope"))


def test_hub_id_is_not_downloaded(tmp_path):
    with pytest.raises(ModelNotFoundError, match="index.embedder"):
        resolve_embedder("sentence-transformers/all-MiniLM-L6-v2")


def test_project_surfaces_missing_model_key(tmp_path, corpus):
    cfg = load_config_dict({"workspace": str(tmp_path / "ws"), "generator": {"model": str(tmp_path / "missing")},
                            "sources": [{"name": "d", "type": "files", "path": str(corpus), "public": True}],
                            "index": {"embedder": "hashing"}})
    with pytest.raises(ModelNotFoundError, match="generator.model"):
        Project(cfg, show_progress=False).ask("hello?", mode="prompt_only")


def test_precision_switch():
    assert resolve_dtype("fp32") == torch.float32
    assert resolve_dtype("bf16") == torch.bfloat16
    assert resolve_dtype("auto") in (torch.float32, torch.bfloat16)


def test_bundled_embedder_truncates_long_text_instead_of_crashing():
    # Counting tokens for chunking must not lift the model's own length limit: a question
    # longer than the window is embedded (truncated), not an index-out-of-range error.
    from framework.retrieval.embedder import build_embedder

    embedder = build_embedder("bundled", precision="fp32")
    text = "leave policy " * 600
    assert len(embedder.tokenize(text)) > 1000
    vectors = embedder.embed([text, "leave policy"])
    assert vectors.shape == (2, 384)
