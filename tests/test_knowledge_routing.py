"""auto routes by what the adapter knows; `finetune --promote` never promotes a combination worse than rag."""

import dataclasses
import json

import pytest
import yaml
from conftest import project_config
from typer.testing import CliRunner

from framework.adapters.manifest import AdapterManifest
from framework.cli.main import app
from framework.evaluation.promotion import combined_gate, promote_if_gate_passes
from framework.project import Project, load_config_dict


@pytest.fixture
def trained(tmp_path, corpus, tiny_model):
    cfg = project_config(tmp_path, corpus, tiny_model, router={"auto_min_score": -1.0})  # retrieval always confident
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    project.synthesize()
    project.finetune(promote=True)
    return cfg, project


def _rewrite_manifest(project, **changes) -> None:
    ref = project.adapters.get("t", "v0001")
    manifest = dataclasses.replace(ref.manifest, **changes)
    (ref.path / "manifest.json").write_text(json.dumps(manifest.to_dict()))


def test_unknown_documents_are_untrained_or_failed_the_check():
    m = AdapterManifest.from_dict({"documents": {"a": "h", "b": "h", "c": "h"},
                                   "knowledge": {"documents": {"a": {"probes": 2, "hits": 2, "known": True},
                                                               "b": {"probes": 2, "hits": 0, "known": False}}}})
    assert m.unknown_documents(["a", "b", "c", "d"]) == ["b", "d"]
    assert AdapterManifest().unknown_documents(["a"]) == []  # no lineage: nothing to judge by


def test_auto_sends_questions_on_documents_the_adapter_does_not_know_to_rag(trained):
    cfg, project = trained
    q = "what is the meal limit ?"
    known = project.ask(q, mode="auto")
    assert known.mode == "combined" and known.adapter == "t-v0001"
    top = known.sources[0].doc_id
    _rewrite_manifest(project, knowledge={"documents": {top: {"probes": 3, "hits": 0, "known": False}}})
    failed = Project(load_config_dict(cfg), show_progress=False).ask(q, mode="auto")
    assert failed.mode == "rag" and failed.adapter is None
    assert f"does not know {top}" in failed.reason and "0 of 3 held-out probes" in failed.reason
    _rewrite_manifest(project, knowledge={}, documents={d: h for d, h in project.adapters.get("t", "v0001")
                                                        .manifest.documents.items() if d != top})
    untrained = Project(load_config_dict(cfg), show_progress=False).ask(q, mode="auto")
    assert untrained.mode == "rag" and "was not trained on it" in untrained.reason
    # `ragtune eval` prints the answering adapter's knowledge check beside the rows.
    from framework.cli.eval_view import knowledge_notes
    from framework.evaluation.results import EvaluationResult, ModeResult

    _rewrite_manifest(project, knowledge={"probes": 20, "kept_epoch": 2.0, "accuracy": 0.35, "low": 0.15,
                                          "high": 0.55, "base": {"accuracy": 0.05}})
    result = EvaluationResult(results=(ModeResult(label="rag", mode="rag"),
                                       ModeResult(label="combined", mode="combined", adapter="t-v0001")))
    fresh = Project(load_config_dict(cfg), show_progress=False)
    assert knowledge_notes(result, fresh.adapters) == [
        "t-v0001 knowledge check (closed-book key span, 20 held-out rewordings of trained facts, epoch 2 kept): "
        "0.35 [0.15, 0.55]; base model 0.05"]


def test_a_combination_worse_than_rag_is_not_promoted(trained, tmp_path, corpus, tiny_model):
    cfg, project = trained
    # A condition combined cannot meet stands for "worse than rag beyond the noise" on this eval split.
    strict = project_config(tmp_path, corpus, tiny_model, finetune={"gate": ["combined.token_f1.delta.low > 1"]})
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(strict))
    run = CliRunner().invoke(app, ["finetune", "--config", str(path), "--promote"])
    assert run.exit_code == 4, run.output  # published, not promoted
    assert "not promoted: finetune.gate failed on the eval split" in " ".join(run.output.split())
    gated = Project(load_config_dict(strict), show_progress=False)
    manifest = gated.adapters.get("t", "v0002").manifest
    assert manifest.promotion["promoted"] is False
    assert "finetune.gate failed on the eval split" in manifest.promotion["reason"]
    assert manifest.promotion["token_f1"]["rag"]["n"] > 0 and gated.adapters.promoted("t") == "v0001"
    rows = [{"question": "what is the meal limit ?", "answer": "45 EUR per day"}] * 4
    passed = promote_if_gate_passes(router=gated.router, registry=gated.adapters,
                                    ref=gated.adapters.get("t", "v0002"), rows=rows,
                                    conditions=["combined.token_f1.delta.high >= -1"])
    assert passed["promoted"] and gated.adapters.promoted("t") == "v0002"
    assert gated.adapters.get("t", "v0002").manifest.promotion["reason"] == "finetune.gate passed"
    # What a refresh adds to its own gate: the same conditions, with its candidate pinned.
    refresh_check = combined_gate(gated.evaluate, rows, spec="t@v0002", conditions=["combined.token_f1.delta.low > 1",
                                                                                    "combined.token_f1 >= 0"])
    assert [c.passed for c in refresh_check.checks] == [False, True]
    assert refresh_check.checks[0].condition == "combined.token_f1.delta.low > 1"


def test_the_default_gate_is_combined_not_worse_than_rag():
    from framework.config import FinetuneConfig

    assert FinetuneConfig().gate == ["combined.token_f1.delta.high >= 0"]
