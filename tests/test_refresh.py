"""`ragtune refresh` end to end on a tiny model: promoted, rejected, nothing to do, dry run.

A five-document corpus is ingested, synthesized and trained (v0001, promoted); then one
document changes a fact, one is deleted and one is added, and one refresh takes the corpus
to a new version, warm-started from v0001, gated against it, promoted or rejected.
"""

import json
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from framework.cli.main import app
from framework.dataset.store import read_jsonl, versions
from framework.project import Project, load_config_dict

from conftest import project_config

DOCS = {
    "leave.md": "Every employee receives 28 days of annual leave per year. Employees must submit leave requests "
                "10 days in advance. The leave tool is called Dayplanner.",
    "office.md": "The office is open from 08:00 to 20:00 on working days. The largest meeting room is called "
                 "Harbour Hall. Visitors must sign in at the front desk.",
    "expenses.md": "The meal limit is 45 EUR per day. Employees must submit receipts within 30 days. "
                   "The expense tool is called Coinbasket.",
    "security.md": "Every password must be at least 16 characters long. The VPN client is called Tunnelwise. "
                   "Laptops must be locked when unattended.",
    "travel.md": "Train travel is always second class. Business trips need approval from the team lead. "
                 "The travel desk is open on every Monday.",
}
NEW_LEAVE = DOCS["leave.md"].replace("28 days", "30 days")
PARKING = "The parking garage is open from 07:00 to 22:00. Every employee may park one car there."


# The default gate's two conditions with margins a tiny random model always meets: its answers are
# word salad, so the default thresholds would let noise decide the outcome these tests check.
LENIENT_GATE = ["candidate@unchanged.token_f1.delta.high >= -1",
                "candidate@changed.token_f1 >= serving@changed.token_f1 - 1"]


def refresh_config(tmp_path: Path, model: Path, **refresh) -> dict:
    refresh.setdefault("gate", LENIENT_GATE)
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    return project_config(tmp_path, docs, model, index={"embedder": "hashing", "chunk_size": 256},
                          dataset={"min_examples": 4, "heldout_documents_fraction": 0.0, "eval_fraction": 0.3},
                          finetune={"save_steps": 0}, refresh={"max_steps": 2, **refresh})


def trained(cfg: dict) -> Project:
    """The corpus ingested, synthesized and trained: t@v0001, promoted."""
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    project.synthesize()
    project.finetune(promote=True)
    return project


def change_corpus(cfg: dict) -> None:
    docs = Path(cfg["sources"][0]["path"])
    (docs / "leave.md").write_text(NEW_LEAVE)
    (docs / "travel.md").unlink()
    (docs / "parking.md").write_text(PARKING)


@pytest.fixture
def project(tmp_path, tiny_model):
    return trained(refresh_config(tmp_path, tiny_model))


def test_one_refresh_takes_a_changed_corpus_to_a_promoted_adapter(project):
    change_corpus(project.config.model_dump())
    report = project.refresh()
    assert report.outcome == "promoted", report.message
    assert (report.serving_before, report.candidate, report.serving_after) == ("v0001", "v0002", "v0002")
    assert project.adapters.promoted("t") == "v0002"
    docs = report.plan["documents"]
    assert docs["new"] == ["docs:parking.md"] and docs["changed"] == ["docs:leave.md"]
    assert docs["deleted"] == ["docs:travel.md"]
    ex = report.examples
    assert ex["new"] > 0 and ex["removed"] > 0 and ex["replay"] == round(0.2 * ex["unchanged"])
    manifest = project.adapters.get("t", "v0002").manifest
    assert manifest.refresh["warm_start"] == "t-v0001" and manifest.refresh["id"] == report.id
    assert manifest.metrics["train_examples"] == ex["new"] + ex["replay"] == ex["trained"]
    assert manifest.refresh["inherited_documents"] == ["docs:travel.md"]  # the weights may still hold it
    # The new dataset version: the deleted document's and the old fact's examples left; the new fact is in.
    rows = read_jsonl(project.dataset_dir(report.examples["dataset_version"]) / "train.jsonl")
    assert not any(r["doc_id"] == "docs:travel.md" for r in rows)
    assert any("30" in r["answer"] for r in rows) and not any("28 days" in r["answer"] for r in rows)
    questions = report.evaluation["questions"]
    assert questions["changed"] > 0 and questions["unchanged"] > 0
    assert set(report.evaluation["metrics"]) == {"all", "changed", "unchanged"}
    assert report.gate["passed"] and len(report.gate["checks"]) == 3  # the two conditions, and the changed facts
    assert report.gate["checks"][2]["condition"].startswith("changed facts")  # 28 -> 30 days: by value
    assert set(report.seconds) >= {"ingest", "synthesize", "train", "evaluate", "total"}
    saved = json.loads((Path(report.report) / "refresh.json").read_text())
    assert saved["outcome"] == "promoted" and "## Gate: passed" in (Path(report.report) / "refresh.md").read_text()
    assert not (project.workspace.refresh("t") / "state.json").exists()
    again = project.refresh()  # the promoted version learned everything: quick no-op
    assert again.outcome == "nothing_to_do" and "nothing changed since the last refresh" in again.message


def test_warm_start_begins_from_the_serving_weights(project):
    project.config = project.config.model_copy(update={"refresh": project.config.refresh.model_copy(
        update={"learning_rate": 1e-12})})
    change_corpus(project.config.model_dump())
    assert project.refresh().outcome == "promoted"
    old, new = (load_file(project.adapters.get("t", v).path / "adapter_model.safetensors") for v in ("v0001", "v0002"))
    lora_b = [k for k in old if "lora_B" in k]
    assert lora_b and all(old[k].abs().max() > 1e-3 for k in lora_b)  # v0001 learned: B is no longer zero
    assert all((old[k] - new[k]).abs().max() < 1e-6 for k in old)  # a fresh LoRA would start from B = 0


def test_a_gate_failure_leaves_the_serving_version_in_place(tmp_path, tiny_model):
    cfg = refresh_config(tmp_path, tiny_model, gate=["candidate@changed.token_f1 > 1",
                                                     "candidate.token_f1 >= serving.token_f1 - 1"])
    project = trained(cfg)
    change_corpus(cfg)
    report = project.refresh()
    assert report.outcome == "gate_failed" and report.candidate == "v0002"
    assert project.adapters.promoted("t") == "v0001" and report.serving_after == "v0001"
    failed, passed, _facts = report.gate["checks"]
    assert not failed["passed"] and "is not > 1.0000" in failed["reason"] and passed["passed"]
    assert "keeps serving" in report.message and Path(report.report, "refresh.md").is_file()
    config_file = tmp_path / "ragtune.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["refresh", "-c", str(config_file), "--json"])
    assert result.exit_code == 4, result.output  # rejected again, without training a new candidate
    assert json.loads(result.stdout)["candidate"] == "v0002" and "already rejected" in result.stdout
    assert [r.version for r in project.adapters.versions("t")] == ["v0001", "v0002"]
    assert project.adapters.promoted("t") == "v0001"


def test_nothing_to_do_is_a_quick_no_op(tmp_path, tiny_model):
    cfg = refresh_config(tmp_path, tiny_model)
    project = trained(cfg)
    config_file = tmp_path / "ragtune.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    first = CliRunner().invoke(app, ["refresh", "-c", str(config_file)])
    assert first.exit_code == 5, first.output
    assert "already learned every current chunk" in first.output
    second = project.refresh()
    assert second.outcome == "nothing_to_do" and "nothing changed since" in second.message
    assert [r.version for r in project.adapters.versions("t")] == ["v0001"]
    assert len(versions(project.workspace.dataset_root("t"))) == 1


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path, tiny_model):
    cfg = refresh_config(tmp_path, tiny_model)
    project = trained(cfg)
    change_corpus(cfg)
    ledger = project.workspace.ledger.read_bytes()
    config_file = tmp_path / "ragtune.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["refresh", "-c", str(config_file), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["outcome"] == "planned" and "nothing was changed" in report["message"]
    assert report["plan"]["not_ingested_yet"] == {"new": ["docs:parking.md"], "changed": ["docs:leave.md"],
                                                  "deleted": ["docs:travel.md"]}
    est = report["estimate"]
    assert est["new"] > 0 and est["trained"] == est["new"] + est["replay"] and est["tokens_per_second"] > 0
    assert est["steps"] == 2 and est["from_scratch_training_seconds"] >= 0
    assert project.workspace.ledger.read_bytes() == ledger
    assert [r.version for r in project.adapters.versions("t")] == ["v0001"]
    assert len(versions(project.workspace.dataset_root("t"))) == 1
    assert not (project.workspace.refresh("t") / "state.json").exists()
