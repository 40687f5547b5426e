"""The export recipes run end to end on the sample exports (hashing embedder, no model)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zip_helpers import ASSETS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("recipe,asset,query,group,expected", [
    ("confluence", "confluence", "deploy tool called Shipwright", "eng", "Runbooks / Deploy checklist"),
    ("notion", "notion", "linter called Tidewater", "staff", "Engineering / Code review guide"),
    ("slack", "slack", "invoices migration rollback window", "staff", "#deploys thread 2026-10-05"),
])
def test_recipe_ingests_and_searches_the_sample(tmp_path, recipe, asset, query, group, expected):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    overrides = [f"sources.0.path={ASSETS / asset}", f"workspace={tmp_path / 'ws'}", "index.embedder=hashing"]
    out = subprocess.run([sys.executable, str(ROOT / "recipes" / f"{recipe}.py"), "--search", query, "--group", group,
                          *[a for o in overrides for a in ("--set", o)]],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert '"new"' in lines[0]
    assert expected in next(line for line in lines if line[:1].isdigit())
