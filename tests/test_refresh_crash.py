"""A refresh SIGKILLed mid-training, and again after publishing its candidate, then run again: it
resumes from the checkpoint, adopts the published candidate instead of training another, and
promotes it; the serving version never changes before that last step."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from framework.refresh.state import load_state

from test_refresh import change_corpus, refresh_config, trained

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=600)


def _killed_at(config: Path, point: str) -> subprocess.CompletedProcess:
    return _run(str(ROOT / "tests" / "refresh_killed_at.py"), str(config), point)


def test_killed_mid_training_then_rerun_completes(tmp_path, tiny_model):
    cfg = refresh_config(tmp_path, tiny_model, max_steps=4)
    cfg["finetune"]["save_steps"] = 2
    project = trained(cfg)
    change_corpus(cfg)
    config = tmp_path / "ragtune.yaml"
    config.write_text(yaml.safe_dump(cfg))
    folder, registry = project.workspace.refresh("t"), project.adapters

    first = _killed_at(config, "save:2")
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    state = load_state(folder)
    assert state.step == "synthesized" and state.dataset_version == "v0002"
    assert (project.workspace.checkpoints("t") / "checkpoint-2").is_dir()
    assert [r.version for r in registry.versions("t")] == ["v0001"] and registry.promoted("t") == "v0001"

    second = _killed_at(config, "trained")  # resumes training at step 2, publishes, dies before evaluating
    assert second.returncode == -signal.SIGKILL, second.stderr[-2000:]
    assert load_state(folder).candidate == "v0002" and load_state(folder).runs == 2
    assert [r.version for r in registry.versions("t")] == ["v0001", "v0002"] and registry.promoted("t") == "v0001"

    rerun = _run("-m", "framework", "refresh", "-c", str(config), "--json")  # the next scheduled run
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    report = json.loads(rerun.stdout)
    assert report["outcome"] == "promoted" and report["id"] == state.id and report["resumed"]
    assert report["candidate"] == "v0002" and report["training"]["resumed_from_step"] == 2
    assert [r.version for r in registry.versions("t")] == ["v0001", "v0002"] and registry.promoted("t") == "v0002"
    metrics = registry.get("t", "v0002").manifest.metrics
    assert metrics["resumed_from_step"] == 2 and metrics["steps"] == 4
    assert not (folder / "state.json").exists() and not project.workspace.checkpoints("t").exists()


class Interrupted(Exception):
    pass


def _stop_at(point: str):
    def on_step(step: str) -> None:
        if step == point:
            raise Interrupted(step)
    return on_step


def test_interrupted_after_evaluating_and_after_promoting_finishes_without_redoing_work(tmp_path, tiny_model):
    cfg = refresh_config(tmp_path, tiny_model)
    project = trained(cfg)
    change_corpus(cfg)
    reports = project.workspace.reports
    with pytest.raises(Interrupted):
        project.refresh(on_step=_stop_at("evaluated"))
    assert load_state(project.workspace.refresh("t")).step == "evaluated" and project.adapters.promoted("t") == "v0001"
    evaluations = sorted(reports.iterdir())
    with pytest.raises(Interrupted):  # promoted, then stopped before the report and the state's removal
        project.refresh(on_step=_stop_at("promoted"))
    assert project.adapters.promoted("t") == "v0002" and sorted(reports.iterdir()) == evaluations
    report = project.refresh()
    assert report.outcome == "promoted" and report.candidate == "v0002" and report.resumed
    assert [r.version for r in project.adapters.versions("t")] == ["v0001", "v0002"]
    assert sorted(p for p in reports.iterdir() if not p.name.startswith("refresh-")) == evaluations  # answered once
    assert project.refresh().outcome == "nothing_to_do"
