"""Named adapter profiles: one `adapters.profiles.NAME` entry gives a team adapter its dataset and audience, and
`ragtune synth / finetune / refresh --adapter NAME` all use it (before, each needed three overrides:
dataset.name, dataset.audience and finetune.adapter, on every command and every refresh)."""

import json

import pytest
import yaml
from conftest import project_config, public_and_hr_sources
from typer.testing import CliRunner

from framework.cli.main import app
from framework.config import Config, ConfigError
from framework.project import load_config, load_config_dict

runner = CliRunner()


def _cli(path, *args):
    return runner.invoke(app, [*args, "-c", str(path)])


def test_one_profile_drives_synth_finetune_and_refresh(tmp_path, tiny_model):
    public, sources = public_and_hr_sources(tmp_path)
    cfg = project_config(tmp_path, public, tiny_model, sources=sources,
                         adapters={"profiles": {"hr": {"audience": ["hr"], "dataset": "hr-set"}}})
    path = tmp_path / "ragtune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert _cli(path, "ingest").exit_code == 0
    synth = _cli(path, "synth", "--adapter", "hr", "--json")
    assert synth.exit_code == 0, synth.output
    card = json.loads(synth.stdout)
    assert (card["name"], card["audience"]) == ("hr-set", ["hr"])
    tuned = _cli(path, "finetune", "--adapter", "hr", "--promote", "--json")
    assert tuned.exit_code == 0, tuned.output
    manifest = json.loads(tuned.stdout)
    assert (manifest["name"], manifest["version"], manifest["audience"]) == ("hr", "v0001", ["hr"])
    assert manifest["dataset"]["name"] == "hr-set"
    refreshed = _cli(path, "refresh", "--adapter", "hr", "--json")
    assert refreshed.exit_code == 5, refreshed.output  # nothing changed: hr@v0001 learned every chunk of hr-set
    assert json.loads(refreshed.stdout)["adapter"] == "hr"
    # Without --adapter, the top-level keys still decide (dataset t, adapter t, audience everyone).
    plain = load_config(path)
    assert (plain.finetune.adapter, plain.dataset.name, plain.dataset.audience) == ("t", "t", [])
    unknown = _cli(path, "synth", "--adapter", "sales")
    assert unknown.exit_code == 2 and "no adapters.profiles.sales" in unknown.output and "profiles: hr" in unknown.output


def test_profiles_are_checked_with_key_paths():
    with pytest.raises(ConfigError) as err:  # every problem at once, each at its key path
        load_config_dict({"adapters": {"profiles": {"hr": {"audiense": ["hr"]}, "bad name": {}}}})
    assert "adapters.profiles.hr.audiense" in str(err.value) and "adapters.profiles.bad name" in str(err.value)
    cfg = Config.model_validate({"adapters": {"profiles": {"support": {}}}, "dataset": {"audience": ["x"]}})
    team = cfg.for_adapter("support")  # a profile without audience: documents everyone may read
    assert (team.finetune.adapter, team.dataset.name, team.dataset.audience) == ("support", "support", [])
    assert cfg.for_adapter(None) is cfg
