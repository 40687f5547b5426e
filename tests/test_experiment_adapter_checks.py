"""Experiments checked against the adapters they answer with: an arm whose adapter's audience is narrower than
the experiment's is refused when the project loads (those callers would get 403 on every request, unlogged);
a version an arm pins is not deleted without --force; `adapters list` marks arms and serves only what config
serves."""

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

import framework
from framework.cli.main import app
from framework.config import ConfigError

runner = CliRunner()


def _cfg(base: dict, tmp_path, experiments: list[dict], **sections) -> dict:
    return {**base, **sections, "experiments": experiments,
            "experiments_store": f"sqlite:///{tmp_path / 'ab.sqlite'}"}


def _arms(adapter: str | None, mode: str = "combined") -> list[dict]:
    return [{"name": "control", "mode": "rag"},
            {"name": "tuned", "mode": mode, **({"adapter": adapter} if adapter else {})}]


def _write(cfg: dict, tmp_path) -> str:
    path = tmp_path / "ragtune.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def test_an_arm_whose_adapter_serves_fewer_groups_than_the_experiment_is_refused_at_load(two_audiences_config,
                                                                                        tmp_path):
    # `hr` (audience hr) in an arm of an experiment for everyone: every caller outside hr got 403 on every
    # request of that arm, and none of it was logged as an exposure.
    everyone = _cfg(two_audiences_config, tmp_path, [{"name": "pilot", "arms": _arms("hr")}])
    with pytest.raises(ConfigError) as err:
        framework.Project(framework.load_config_dict(everyone), show_progress=False)
    message = str(err.value)
    assert "experiments.0.arms.1.adapter" in message and "experiment pilot arm tuned" in message
    assert "adapter hr" in message and "every caller outside hr" in message
    two_groups = _cfg(two_audiences_config, tmp_path,
                      [{"name": "pilot", "audience": ["hr", "sales"], "arms": _arms("hr", "finetuned")}])
    with pytest.raises(ConfigError, match=r"arms\.1\.adapter.*groups sales would be refused"):
        framework.Project(framework.load_config_dict(two_groups), show_progress=False)
    # No adapter in the arm: its callers get router.adapter (hr here), which is just as narrow.
    default = _cfg(two_audiences_config, tmp_path, [{"name": "pilot", "arms": _arms(None, "finetuned")}])
    with pytest.raises(ConfigError, match=r"arms\.1\.mode.*router\.adapter \(hr\).*every caller outside hr"):
        framework.Project(framework.load_config_dict(default), show_progress=False)
    # The CLI refuses it as an invalid config (exit 2), naming the arm.
    listed = runner.invoke(app, ["ab", "list", "-c", _write(everyone, tmp_path)])
    assert listed.exit_code == 2 and "experiment pilot arm tuned" in listed.output


def test_arms_that_fit_their_experiment_load(two_audiences_config, tmp_path):
    fits = [{"name": "hr-pilot", "audience": ["hr"], "arms": _arms("hr")},
            {"name": "public", "arms": _arms("t")},  # t learned public documents: everyone may use it
            {"name": "sales", "audience": ["sales"], "arms": _arms(None, "finetuned")},  # sales -> t
            {"name": "stopped", "enabled": False, "arms": _arms("hr")},
            {"name": "by-auto", "arms": _arms("hr", "auto")}]  # auto answers without an adapter it may not use
    project = framework.Project(framework.load_config_dict(_cfg(two_audiences_config, tmp_path, fits)),
                                show_progress=False)
    assert project.experiments.names == ("hr-pilot", "public", "sales", "stopped", "by-auto")
    project.close()


@pytest.fixture
def own_workspace(two_audiences_config, tmp_path):
    """The trained two-adapter workspace copied, so a test may delete versions."""
    shutil.copytree(two_audiences_config["workspace"], tmp_path / "ws")
    return {**two_audiences_config, "workspace": str(tmp_path / "ws")}


def test_a_version_an_arm_pins_is_not_deleted_without_force(own_workspace, tmp_path):
    # `ragtune adapters delete t v0001` removed the version experiment pilot pinned; the next serve refused to
    # start.
    cfg = _cfg(own_workspace, tmp_path, [{"name": "pilot", "arms": _arms("t@v0001")}])
    path = _write(cfg, tmp_path)
    refused = runner.invoke(app, ["adapters", "delete", "t", "v0001", "-c", path])
    assert refused.exit_code == 3, refused.output
    assert "experiment pilot arm tuned" in refused.output and "--force" in refused.output
    assert (tmp_path / "ws" / "adapters" / "t" / "v0001").is_dir()
    pinned_by_group = runner.invoke(app, ["adapters", "delete", "hr", "v0001", "-c", path,
                                          "--set", "router.group_adapters.hr=hr@v0001", "--set", "router.adapter=t"])
    assert pinned_by_group.exit_code == 3 and "router.group_adapters.hr" in pinned_by_group.output
    forced = runner.invoke(app, ["adapters", "delete", "t", "v0001", "--force", "-c", path])
    assert forced.exit_code == 0, forced.output
    assert not (tmp_path / "ws" / "adapters" / "t" / "v0001").exists()


def test_list_marks_arm_versions_and_serving_only_what_config_serves(own_workspace, tmp_path):
    # `adapters list` marked a promoted version "serving" although no router key named its adapter, and did not
    # show the version an experiment arm answered with.
    cfg = _cfg(own_workspace, tmp_path, [{"name": "pilot", "arms": _arms("t@v0001")}],
               router={"adapter": "hr"})  # t is named by no router key (and hr serves only group hr callers)
    rows = json.loads(runner.invoke(app, ["adapters", "list", "-c", _write(cfg, tmp_path), "--json"]).stdout)
    by_name = {r["name"]: r for r in rows}
    assert (by_name["t"]["promoted"], by_name["t"]["serving"], by_name["t"]["arms"]) == (True, False, ["pilot/tuned"])
    assert (by_name["hr"]["serving"], by_name["hr"]["arms"]) == (True, [])


def test_a_promotion_that_would_leave_arm_callers_out_is_refused(own_workspace, tmp_path):
    # An arm naming `t` serves its promoted version: promoting an hr-only version of t would leave every caller
    # outside hr with 403 (and the next load would refuse the config, promote included).
    adapters = tmp_path / "ws" / "adapters"
    shutil.copytree(adapters / "hr" / "v0001", adapters / "t" / "v0002")  # a version of t trained for hr only
    path = _write(_cfg(own_workspace, tmp_path, [{"name": "pilot", "arms": _arms("t")}]), tmp_path)
    refused = runner.invoke(app, ["adapters", "promote", "t", "v0002", "-c", path])
    assert refused.exit_code == 3 and "not promoted" in refused.output and "experiment pilot arm tuned" in refused.output
    assert json.loads((adapters / "t" / "registry.json").read_text())["promoted"] == "v0001"
    assert runner.invoke(app, ["ab", "list", "-c", path]).exit_code == 0
