"""`accelerate launch` with the shipped DDP and FSDP configs: two processes on this CPU (gloo), tiny model.

Both runs must finish, publish exactly one version (only the main process writes), and
that adapter must load and answer. On a CPU accelerate runs the FSDP config data-parallel
(it shards only across GPUs), which the manifest records; the GPU check runs it sharded.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import project_config

from framework.project import Project, load_config

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).with_name("accelerate")


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("distributed")
    corpus = tmp / "corpus"
    corpus.mkdir()
    (corpus / "leave.md").write_text("# Leave\n\nEmployees get 28 days of annual leave. The meal limit is 45 eur per "
                                     "day. The office opens at 8 .\n")
    (corpus / "vpn.md").write_text("# VPN\n\nThe vpn is required every day. Receipts are needed for every meal .\n")
    cfg = project_config(tmp, corpus, tiny_model, runtime={"device": "cpu"}, dataset={"min_examples": 2},
                         finetune={"max_steps": 2, "save_steps": 0, "batch_size": 2})
    path = tmp / "ragtune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    project = Project(load_config(path), show_progress=False)
    project.ingest()
    project.synthesize()
    return path


@pytest.mark.parametrize("recipe, kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP")])
def test_recipes_are_accelerate_configs(recipe, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(ROOT / "recipes" / "accelerate" / f"{recipe}.yaml"))
    assert str(cfg.distributed_type).endswith(kind) and cfg.num_processes == 2 and str(cfg.mixed_precision).endswith("no")
    if recipe == "fsdp":
        assert cfg.fsdp_config["fsdp_version"] == 2 and cfg.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["ddp", "fsdp"])
def test_two_processes_train_and_only_the_main_one_publishes(synthesized, recipe, tmp_path):
    config = tmp_path / "ragtune.yaml"
    cfg = yaml.safe_load(synthesized.read_text())
    shutil.copytree(cfg["workspace"], tmp_path / "ws")
    config.write_text(yaml.safe_dump({**cfg, "workspace": str(tmp_path / "ws")}))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    cmd = [str(ACCELERATE), "launch", "--config_file", str(ROOT / "recipes" / "accelerate" / f"{recipe}.yaml"),
           "--num_processes", "2", "-m", "framework", "finetune", "-c", str(config), "--json", "--promote"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads(done.stdout)  # one process printed it: the others return without output
    assert manifest["version"] == "v0001" and manifest["metrics"]["world_size"] == 2
    assert manifest["metrics"]["distributed"] == "multi_cpu"
    project = Project(load_config(config), show_progress=False)
    assert [r.version for r in project.adapters.versions("t")] == ["v0001"]
    answer = project.ask("what is the meal limit ?", mode="finetuned")
    assert answer.adapter == "t-v0001" and answer.device == "cpu"
