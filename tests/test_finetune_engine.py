"""Training engine: checkpoints and resume, eval per epoch, early stopping, progress, trackers, manifest."""

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import yaml
from conftest import project_config
from safetensors.torch import load_file
from transformers import TrainerCallback

from framework.config import ConfigError
from framework.project import Project, load_config_dict
from framework.training.checkpoints import ResumeError
from framework.training.lock import TrainingBusyError


class Crash(TrainerCallback):
    """Simulates a kill: the run dies after optimizer step `at`, before that step is checkpointed."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt(f"killed at step {self.at}")


def _project(tmp_path, corpus, model, name="ws", **finetune):
    cfg = project_config(tmp_path, corpus, model, workspace=str(tmp_path / name),
                         finetune={"max_steps": -1, "epochs": 2, "save_steps": 2, "batch_size": 4, **finetune})
    return Project(load_config_dict(cfg), show_progress=False)


def _adapter_tensors(ref) -> dict:
    return load_file(str(ref.path / "adapter_model.safetensors"))


@pytest.fixture
def dataset_ready(tmp_path, corpus, tiny_model):
    def make(name, **finetune):
        p = _project(tmp_path, corpus, tiny_model, name=name, **finetune)
        p.ingest()
        p.synthesize()
        return p
    return make


def test_killed_run_resumes_to_the_same_weights(dataset_ready):
    straight = dataset_ready("straight")
    full = straight.finetune()
    assert full.metrics["steps"] >= 6, "the test needs a run that crosses several checkpoints"
    crashed = dataset_ready("crashed")
    with pytest.raises(KeyboardInterrupt):
        crashed.finetune(callbacks=[Crash(at=5)])
    ckpts = crashed.workspace.checkpoints("t")
    assert sorted(p.name for p in ckpts.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert crashed.adapters.latest("t") is None  # nothing half-written was published
    resumed = crashed.finetune(resume=True)
    assert resumed.metrics["resumed_from_step"] == 4
    assert resumed.metrics["steps"] == full.metrics["steps"]
    a, b = _adapter_tensors(straight.adapters.latest("t")), _adapter_tensors(crashed.adapters.latest("t"))
    assert a.keys() == b.keys() and any(t.abs().max() > 0 for k, t in a.items() if "lora_B" in k)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    assert resumed.metrics["eval_loss"] == pytest.approx(full.metrics["eval_loss"], abs=1e-4)
    assert not ckpts.exists()  # a finished run leaves no checkpoints behind


def test_resume_refuses_another_run(dataset_ready):
    project = dataset_ready("ws")
    with pytest.raises(ResumeError, match="nothing to resume"):
        project.finetune(resume=True)
    with pytest.raises(KeyboardInterrupt):
        project.finetune(callbacks=[Crash(at=3)])
    changed = Project(project.config.model_copy(update={"finetune": project.config.finetune.model_copy(
        update={"learning_rate": 0.5})}), show_progress=False)
    with pytest.raises(ResumeError, match=r"learning_rate: 0.001 -> 0.5"):
        changed.finetune(resume=True)


def test_eval_loss_each_epoch_and_a_complete_manifest(dataset_ready):
    project = dataset_ready("ws", epochs=3)
    manifest = project.finetune()
    m = manifest.metrics
    assert [e["epoch"] for e in m["eval_loss_per_epoch"]] == [1.0, 2.0, 3.0]
    assert all(e["eval_loss"] > 0 for e in m["eval_loss_per_epoch"]) and m["eval_loss"] > 0
    assert m["tokens"] > 0 and m["tokens_per_second"] > 0
    card = json.loads((project.dataset_dir() / "card.json").read_text())
    assert manifest.base_fingerprint and manifest.base_model == project.config.generator.model
    assert manifest.dataset["hash"] == card["hash"] and manifest.dataset["created_at"] == card["created_at"]
    assert manifest.documents == card["documents"] and "docs:handbook.md" in manifest.documents
    assert manifest.audience == () and manifest.hyperparameters["rank"] == 4
    assert set(manifest.timings) >= {"started_at", "train_seconds", "total_seconds"}
    assert manifest.created_at and manifest.software["peft"]
    assert json.loads((project.adapters.latest("t").path / "manifest.json").read_text()) == manifest.to_dict()


def test_early_stopping_stops_when_eval_loss_stalls(dataset_ready):
    # A learning rate this small cannot move the loss, so each evaluation is no better than the last.
    project = dataset_ready("ws", epochs=6, learning_rate=1e-12, early_stopping_patience=1)
    m = project.finetune().metrics
    assert m["stopped_early"] is True and m["epochs"] == 2.0
    assert len(m["eval_loss_per_epoch"]) == 2


def test_early_stopping_needs_an_eval_split(tmp_path, corpus, tiny_model):
    cfg = project_config(tmp_path, corpus, tiny_model, dataset={"eval_fraction": 0.0, "heldout_documents_fraction": 0.0},
                         finetune={"early_stopping_patience": 2})
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    project.synthesize()
    with pytest.raises(ValueError, match="needs an eval split"):
        project.finetune()


def test_progress_bar_shows_loss_and_tokens_per_second(tmp_path, corpus, tiny_model, capsys):
    cfg = project_config(tmp_path, corpus, tiny_model)
    project = Project(load_config_dict(cfg), show_progress=True)
    project.ingest()
    project.synthesize()
    capsys.readouterr()
    project.finetune()
    err = capsys.readouterr().err
    assert "finetune" in err and "tok/s" in err and "loss " in err


def test_report_to_is_checked_against_installed_trackers(tmp_path, corpus, tiny_model, monkeypatch):
    from transformers import integrations

    from framework.training.lora import _training_args

    with pytest.raises(ConfigError, match="finetune.report_to.0"):
        load_config_dict(project_config(tmp_path, corpus, tiny_model, finetune={"report_to": ["tensorbord"]}))
    cfg = load_config_dict(project_config(tmp_path, corpus, tiny_model, finetune={"report_to": ["tensorboard"]}))
    monkeypatch.setattr(integrations, "get_available_reporting_integrations", lambda: [])
    with pytest.raises(ValueError, match="pip install tensorboard"):
        _training_args(cfg.finetune, tmp_path, bf16=False, total_steps=2, has_eval=False)
    monkeypatch.setattr(integrations, "get_available_reporting_integrations", lambda: ["tensorboard"])
    args = _training_args(cfg.finetune, tmp_path, bf16=False, total_steps=2, has_eval=False)
    assert args.report_to == ["tensorboard"]
    default = load_config_dict(project_config(tmp_path, corpus, tiny_model)).finetune
    assert _training_args(default, tmp_path, bf16=False, total_steps=2, has_eval=False).report_to == []


def test_same_entry_point_runs_under_torchrun(tmp_path, corpus, tiny_model):
    """Two CPU processes (gloo DDP) train one adapter; only the main process publishes it."""
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.is_file():
        pytest.skip("torchrun is not installed beside this Python")
    cfg = project_config(tmp_path, corpus, tiny_model, finetune={"max_steps": 4, "save_steps": 2})
    path = tmp_path / "ragtune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    project.synthesize()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "framework", "finetune",
                          "-c", str(path), "--json"], capture_output=True, text=True, env=env, timeout=300)
    errors = [line for line in run.stderr.splitlines() if "Error" in line or "error" in line]
    assert run.returncode == 0, "\n".join(errors[-20:]) or run.stderr[-3000:]
    manifest = json.loads(run.stdout)
    assert manifest["metrics"]["world_size"] == 2 and manifest["metrics"]["steps"] == 4
    assert [r.version for r in project.adapters.versions("t")] == ["v0001"]
    assert not project.workspace.checkpoints("t").exists()


class Pause(TrainerCallback):
    """Holds the run after optimizer step `at` until released: a run in progress to start another against."""

    def __init__(self, at: int) -> None:
        self.at, self.reached, self.release = at, threading.Event(), threading.Event()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            self.reached.set()
            self.release.wait(300)


def _folder_state(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*")} if folder.exists() else {}


def test_a_second_run_of_the_same_adapter_fails_at_once(tmp_path, corpus, tiny_model):
    # Two runs of one adapter shared its .incoming folder and checkpoints: the second wiped the first's and
    # trained over them. Now the first holds the adapter's lock until it has published.
    cfg = project_config(tmp_path, corpus, tiny_model, finetune={"max_steps": -1, "epochs": 2, "save_steps": 2,
                                                                 "batch_size": 4})
    path = tmp_path / "ragtune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    first = Project(load_config_dict(cfg), show_progress=False)
    first.ingest()
    first.synthesize()
    pause = Pause(at=3)
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(first.finetune, callbacks=[pause])
        try:
            assert pause.reached.wait(300), running.exception(timeout=0) if running.done() else "no step 3"
            ws = first.workspace
            before = (_folder_state(ws.checkpoints("t")), _folder_state(first.adapters.staging_dir("t")))
            assert before[0], "the first run has checkpoints to protect"
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
            cli = subprocess.run([sys.executable, "-m", "framework", "finetune", "-c", str(path)],
                                 capture_output=True, text=True, env=env, timeout=300)
            assert cli.returncode == 1, cli.stdout + cli.stderr
            assert "another run is training adapter 't'" in cli.stdout + cli.stderr
            assert "finetune estimate" not in cli.stdout + cli.stderr  # refused before measuring anything
            with pytest.raises(TrainingBusyError, match=r"t.lock is locked\); wait for it to finish"):
                Project(load_config_dict(cfg), show_progress=False).finetune()
            torchrun = Path(sys.executable).parent / "torchrun"
            if torchrun.is_file():  # a refused launch: its lead stops, and the other rank touches nothing shared
                launch = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "framework",
                                         "finetune", "-c", str(path)], capture_output=True, text=True, env=env,
                                        timeout=300)
                assert launch.returncode != 0 and "another run is training adapter 't'" in launch.stderr
            after = (_folder_state(ws.checkpoints("t")), _folder_state(first.adapters.staging_dir("t")))
            assert after == before
        finally:
            pause.release.set()
        manifest = running.result(timeout=300)
    assert manifest.version == "v0001" and [r.version for r in first.adapters.versions("t")] == ["v0001"]
    assert Project(load_config_dict(cfg), show_progress=False).finetune().version == "v0002"  # the lock is free


def test_cli_resume_without_checkpoint_is_a_clear_error(tmp_path, corpus, tiny_model):
    from typer.testing import CliRunner

    from framework.cli.main import app

    path = tmp_path / "ragtune.yaml"
    path.write_text(yaml.safe_dump(project_config(tmp_path, corpus, tiny_model)))
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "-c", str(path), "--json"]).exit_code == 0
    assert runner.invoke(app, ["synth", "-c", str(path), "--json"]).exit_code == 0
    result = runner.invoke(app, ["finetune", "-c", str(path), "--resume"])
    assert result.exit_code == 1 and "nothing to resume" in result.output


def test_bf16_base_keeps_lora_weights_in_fp32(tmp_path, corpus, tiny_model, caplog):
    cfg = project_config(tmp_path, corpus, tiny_model, precision="bf16", finetune={"base_precision": "bf16"})
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    project.synthesize()
    manifest = project.finetune()
    assert manifest.precision == "bf16" and manifest.base_weights_dtype == "bfloat16"
    tensors = _adapter_tensors(project.adapters.latest("t"))
    assert {t.dtype for t in tensors.values()} == {torch.float32}
    fp32 = Project(project.config.model_copy(update={"precision": "fp32"}), show_progress=False)
    assert fp32.finetune().base_weights_dtype == "float32"
    assert "applies only when training in bf16" in caplog.text
