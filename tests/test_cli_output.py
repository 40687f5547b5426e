"""What a user sees from the CLI when its output goes to a file or a pipe: tables unwrapped, no library
debug lines, the documented exit codes."""

from __future__ import annotations

import io
import logging

import yaml
from typer.testing import CliRunner

from framework.cli.common import PlainWidthConsole
from framework.cli.main import app
from framework.config import ExperimentConfig
from framework.experiments.store import EXPOSURES, ExperimentStore
from framework.retrieval.lexical import LexicalIndex

from test_experiments_report import CFG, fixed_log


def _ab_config(tmp_path):
    url = f"sqlite:///{tmp_path / 'ab.sqlite'}"
    config = tmp_path / "ragtune.yaml"
    long = ExperimentConfig.model_validate({**CFG.model_dump(mode="json"), "name": "greeting-style-q4-2026"})
    config.write_text(yaml.safe_dump({"workspace": str(tmp_path / "ws"), "experiments_store": url,
                                      "experiments": [CFG.model_dump(mode="json"), long.model_dump(mode="json")]}))
    return config, url


def test_ab_report_and_assign_on_an_unknown_experiment_exit_2_naming_the_configured_ones(tmp_path):
    config, _ = _ab_config(tmp_path)
    for args in (["ab", "report", "nope"], ["ab", "assign", "nope", "u1"]):
        result = CliRunner().invoke(app, [*args, "-c", str(config)])
        assert result.exit_code == 2, (args, result.output)
        assert "no experiment named 'nope'" in result.output and "greeting, greeting-style-q4-2026" in result.output


def test_a_report_printed_to_a_file_keeps_each_markdown_table_row_on_one_line(tmp_path):
    config, url = _ab_config(tmp_path)
    exposures, outcomes = fixed_log()
    store = ExperimentStore(url)
    with store.engine.begin() as conn:
        conn.execute(EXPOSURES.insert(), [e.__dict__ for e in exposures])
    for (request_id, metric), value in outcomes.items():
        store.record_outcome(request_id, metric, value)
    store.close()
    result = CliRunner().invoke(app, ["ab", "report", "greeting", "-c", str(config)])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert rows and max(map(len, rows)) > 80  # the case that was cut at 80 columns
    assert all(line.rstrip().endswith("|") for line in rows), rows


def test_a_console_writing_to_a_file_does_not_wrap_but_a_given_width_still_holds(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    buffer = io.StringIO()
    PlainWidthConsole(file=buffer).print("word " * 60)
    assert len(buffer.getvalue().splitlines()) == 1
    narrow = io.StringIO()
    PlainWidthConsole(file=narrow, width=40).print("word " * 60)
    assert len(narrow.getvalue().splitlines()) > 1


def test_building_the_lexical_index_logs_nothing_below_the_application_level():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # what `ragtune` configures
    try:
        LexicalIndex.build(ids=["a", "b"], texts=["leave days", "meal limit"], acls=[["public"], ["hr"]])
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert stream.getvalue() == "", stream.getvalue()


def _published(tmp_path):
    from framework.adapters.manifest import AdapterManifest
    from framework.adapters.registry import AdapterRegistry

    reg = AdapterRegistry(tmp_path / "ws" / "adapters")
    for name, audience in (("support-team-answers-2026", ("support-tier-2", "support-tier-3")), ("hr", ("hr",))):
        for _ in range(2):
            staging = reg.staging_dir(name)
            staging.mkdir(parents=True, exist_ok=True)
            reg.publish(name, staging, AdapterManifest(audience=audience, metrics={"eval_loss": 1.234567891}))
    reg.promote("support-team-answers-2026", "v0002")
    config = tmp_path / "ragtune.yaml"
    config.write_text(yaml.safe_dump({"workspace": str(tmp_path / "ws"),
                                      "router": {"adapter": "support-team-answers-2026"}}))
    return config


def test_adapters_list_never_cuts_names_versions_or_status(tmp_path):
    config = _published(tmp_path)
    for env in ({}, {"COLUMNS": "100"}):  # a file or pipe: whole lines; a narrower terminal: other columns wrap
        result = CliRunner().invoke(app, ["adapters", "list", "-c", str(config)], env=env)
        assert result.exit_code == 0, result.output
        text = result.stdout
        assert "…" not in text, text
        lines = [line for line in text.splitlines() if "support-team-answers-2026" in line]
        assert len(lines) == 2 and "v0001" in lines[0] and "v0002" in lines[1], text
        assert "promoted serving" in lines[1], text
        if not env:
            assert "support-tier-2, support-tier-3" in lines[0] and "1.2346" in lines[0], text
