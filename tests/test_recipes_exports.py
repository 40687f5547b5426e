"""The export recipes run end to end on the sample exports (hashing embedder, no model)."""

import runpy
import sys
from pathlib import Path

import pytest
from export_zips import ASSETS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("recipe,query,group,expected", [
    ("confluence", "deploy tool called Shipwright", "eng", "Runbooks / Deploy checklist"),
    ("notion", "linter called Tidewater", "staff", "Engineering / Code review guide"),
    ("slack", "invoices migration rollback window", "staff", "#deploys thread 2026-10-05"),
])
def test_recipe_ingests_and_searches_the_sample(tmp_path, monkeypatch, capsys, recipe, query, group, expected):
    overrides = [f"sources.0.path={ASSETS / recipe}", f"workspace={tmp_path / 'ws'}", "index.embedder=hashing"]
    monkeypatch.setattr(sys, "argv", [f"{recipe}.py", "--search", query, "--group", group,
                                      *[a for o in overrides for a in ("--set", o)]])
    runpy.run_path(str(ROOT / "recipes" / f"{recipe}.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert '"new"' in lines[0]
    assert expected in next(line for line in lines if line[:1].isdigit())
