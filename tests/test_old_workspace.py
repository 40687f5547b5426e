"""A workspace written by the flat-layout ragtune (tests/assets/workspace-0.1) keeps working."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from framework.adapters.registry import AdapterError
from framework.cli.main import app
from framework.dataset.card import DatasetCard
from framework.project import Project, load_config
from framework.records import Principal
from framework.serving.router import served_adapter

ASSET = Path(__file__).parent / "assets" / "workspace-0.1"
STAFF = Principal(user="sam", groups=("staff",))


@pytest.fixture
def old(tmp_path):
    folder = shutil.copytree(ASSET, tmp_path / "old", symlinks=True)
    overrides = [f"generator.model={folder / 'model'}"]
    return Project(load_config(folder / "ragtune.yaml", overrides), show_progress=False), folder, overrides


def test_index_ledger_and_lexical_index_are_read_as_they_are(old):
    project, _, _ = old
    before = project.index.ids()
    report = project.ingest().to_dict()
    assert report["documents"] == {"new": 0, "changed": 0, "unchanged": 2, "deleted": 0, "failed": 0}
    assert report["chunks_embedded"] == 0 and project.index.ids() == before
    hits = project.retrieve("meal limit", principal=STAFF)
    assert hits and "45 EUR" in hits[0].text
    assert project.retrieve("meal limit", principal=Principal(groups=("sales",))) == []


def test_old_dataset_version_and_adapter_serve_and_train_on(old):
    project, folder, overrides = old
    old_card = DatasetCard.load(project.dataset_dir("v0001"))
    assert old_card.version == "v0001" and old_card.audience == ("staff",) and old_card.documents
    # Since issue 13 a version serves only once promoted; this workspace predates that and never promoted
    # its adapter, so an upgrade says so and one command makes it live again.
    with pytest.raises(AdapterError, match="none is promoted.*ragtune adapters promote t v0001"):
        served_adapter(project.adapters, project.config.router, STAFF)
    promoted = CliRunner().invoke(app, ["adapters", "promote", "t", "v0001", "-c", str(folder / "ragtune.yaml"),
                                        *[a for o in overrides for a in ("--set", o)]])
    assert promoted.exit_code == 0, promoted.output
    ref = served_adapter(project.adapters, project.config.router, STAFF)
    assert ref.version == "v0001" and ref.manifest.audience == ("staff",)
    assert ref.manifest.dataset["hash"] == old_card.hash
    answer = project.ask("what is the meal limit ?", mode="combined", user="sam", groups=["staff"])
    assert answer.adapter == "t-v0001" and answer.sources
    card = project.synthesize()
    assert card.version == "v0002" and card.incremental["previous_version"] == "v0001"
    # the extractive rules changed since this workspace was written (a new generation fingerprint): its cached
    # pairs, asked the old way, are generated again rather than reused
    assert card.generation_fingerprint != old_card.generation_fingerprint
    assert card.incremental["chunks_generated"] > 0 and card.incremental["chunks_reused"] == 0
    assert project.finetune().version == "v0002"
    shown = CliRunner().invoke(app, ["adapters", "show", "t@v0001", "-c", str(folder / "ragtune.yaml"),
                                     *[a for o in overrides for a in ("--set", o)], "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["staleness"]["unchanged"] == len(old_card.documents)
