"""`ragtune ingest --json`: counts per state, chunks embedded, failures with reasons, seconds per stage."""

import json

import yaml
from conftest import project_config
from typer.testing import CliRunner

from framework.cli.main import app
from framework.ingest.pipeline import STAGES


def _ingest(config):
    result = CliRunner().invoke(app, ["ingest", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_report_counts_every_state_and_times_every_stage(tmp_path, corpus):
    config = tmp_path / "ragtune.yaml"
    config.write_text(yaml.safe_dump(project_config(tmp_path, corpus)))
    (corpus / "broken.json").write_text('{"unterminated": ')
    first = _ingest(config)
    assert first["documents"] == {"new": 5, "changed": 0, "unchanged": 0, "deleted": 0, "failed": 1}
    assert first["failures"] == [{"uri": (corpus / "broken.json").as_uri(), "path": str(corpus / "broken.json"),
                                  "doc_id": "docs:broken.json",
                                  "reason": f"{corpus / 'broken.json'}: the file is not valid JSON (Expecting value: "
                                            "line 1 column 18 (char 17)); fix it or exclude the file",
                                  "kept_previous": False, "warnings": []}]
    assert list(first["seconds"]) == list(STAGES)
    assert all(first["seconds"][s] > 0 for s in ("scan", "parse", "chunk", "embed", "write", "lexical", "total"))
    assert first["chunks_embedded"] > 0

    (corpus / "handbook.md").write_text("# Handbook\n\nEvery employee receives 30 days of annual leave.")
    (corpus / "travel.docx").unlink()
    second = _ingest(config)
    assert second["documents"] == {"new": 0, "changed": 1, "unchanged": 3, "deleted": 1, "failed": 1}
    assert 0 < second["chunks_embedded"] < first["chunks_embedded"] and second["chunks_deleted"] > 0
