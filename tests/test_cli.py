import json
from pathlib import Path

import pytest
import yaml
from conftest import project_config
from typer.testing import CliRunner

from framework.cli.main import app
from framework.project import load_config
from framework.records import ANSWER_MODES, Principal

runner = CliRunner()


@pytest.fixture
def config_file(tmp_path, corpus, tiny_model):
    path = tmp_path / "ragtune.yaml"
    path.write_text(yaml.safe_dump(project_config(tmp_path, corpus, tiny_model)))
    return path


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_init_writes_a_valid_commented_config(tmp_path):
    target = tmp_path / "ragtune.yaml"
    result = _invoke("init", target)
    assert result.exit_code == 0, result.output
    assert "# " in target.read_text()
    assert load_config(target).adapters.serve == "promoted"
    uncommented = target.read_text().replace("# adapters:\n#   serve: latest", "adapters:\n  serve: latest")
    target.write_text(uncommented)  # the opt-in is written commented out, ready to enable
    assert load_config(target).adapters.serve == "latest"
    assert _invoke("init", target).exit_code == 1


def test_ingest_json_and_reingest_reports_zero_embedded(config_file):
    first = _invoke("ingest", "-c", config_file, "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["documents"]["new"] == 5 and report["chunks_embedded"] > 0
    second = json.loads(_invoke("ingest", "-c", config_file, "--json").stdout)
    assert second["chunks_embedded"] == 0 and second["documents"]["unchanged"] == 5
    assert set(second["seconds"]) >= {"scan"}


def test_ask_rag_json_points_at_real_chunks(config_file):
    _invoke("ingest", "-c", config_file, "--json")
    result = _invoke("ask", "what is the meal limit ?", "--mode", "rag", "-c", config_file, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["mode"] == "rag" and answer["sources"]
    from framework.project import Project

    ids = Project(load_config(config_file), show_progress=False).index.ids()
    assert all(s["chunk_id"] in ids and s["uri"].startswith("file://") for s in answer["sources"])
    assert answer["sources"][0]["text"] in answer["prompt"]


def test_finetuned_without_adapter_explains_how_to_train(config_file):
    _invoke("ingest", "-c", config_file, "--json")
    result = _invoke("ask", "what is the meal limit ?", "--mode", "finetuned", "-c", config_file)
    assert result.exit_code == 3
    assert "ragtune finetune" in result.output


def test_config_errors_exit_2_with_key_path(config_file):
    result = _invoke("ask", "q?", "-c", config_file, "--set", "router.defualt_mode=rag")
    assert result.exit_code == 2 and "router.defualt_mode: unknown key" in result.output
    result = _invoke("ask", "q?", "-c", config_file, "--mode", "finetunned")
    assert result.exit_code == 2 and "allowed: prompt_only, rag, finetuned, combined, auto" in result.output
    result = _invoke("ask", "q?", "-c", config_file, "--set", "router.default_mode=ragg")
    assert result.exit_code == 2 and "router.default_mode" in result.output


def test_missing_config_and_empty_index_are_clear(tmp_path, config_file):
    result = _invoke("ingest", "-c", tmp_path / "nope.yaml")
    assert result.exit_code == 2 and "ragtune init" in result.output
    result = _invoke("synth", "-c", config_file)
    assert result.exit_code == 1 and "ragtune ingest" in result.output


def test_full_cycle_then_compare_and_eval(config_file, tmp_path):
    assert _invoke("ingest", "-c", config_file, "--json").exit_code == 0
    assert _invoke("synth", "-c", config_file, "--json").exit_code == 0
    assert _invoke("finetune", "-c", config_file, "--json", "--promote").exit_code == 0
    result = _invoke("compare", "how many days of annual leave ?", "-c", config_file)
    assert result.exit_code == 0, result.output
    for mode in ("prompt_only", "rag", "finetuned", "combined"):
        assert mode in result.output
    result = _invoke("eval", "-c", config_file, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["results"]) == {"prompt_only", "rag", "finetuned", "combined"}
    for row in out["results"].values():
        assert 0 <= row["metrics"]["token_f1"]["value"] <= 1 and row["metrics"]["latency_p50_s"]["value"] > 0
    assert 0 <= out["results"]["rag"]["metrics"]["retrieval_hit"]["value"] <= 1
    assert out["results"]["prompt_only"]["metrics"]["retrieval_hit"]["value"] is None
    assert Path(out["report"]).parent.parent == tmp_path / "ws" / "reports"


def _all_commands(command, path=()):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _all_commands(sub, (*path, name))


def test_every_command_has_working_help():
    import typer

    paths = list(_all_commands(typer.main.get_command(app)))
    assert ("eval",) in paths and ("adapters", "merge") in paths
    for path in paths:
        result = _invoke(*path, "--help")
        assert result.exit_code == 0 and "Usage" in result.output, (path, result.output)


TIMING = ("latency_s", "latency_p50_s", "latency_p95_s", "tokens_per_s")


def _without_timing(value):
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def test_cli_and_api_produce_the_same_compare_and_eval(config_file):
    from framework.project import Project

    for step in ("ingest", "synth", "finetune"):
        assert _invoke(step, "-c", config_file, "--json").exit_code == 0
    assert _invoke("adapters", "promote", "t", "v0001", "-c", config_file).exit_code == 0
    question = "how many days of annual leave ?"
    cli = json.loads(_invoke("compare", question, "-c", config_file, "--group", "staff", "--json").stdout)
    project = Project(load_config(config_file), show_progress=False)
    api = project.compare(question, principal=Principal(groups=("staff",))).to_dict()
    assert _without_timing(cli) == _without_timing(api) and set(api["answers"]) == set(ANSWER_MODES)
    gate = "combined.token_f1 >= 0"
    cli_eval = json.loads(_invoke("eval", "-c", config_file, "--json", "--gate", gate).stdout)
    api_eval = project.evaluate(gates=[gate])
    assert _without_timing({k: v for k, v in cli_eval.items() if k != "report"}) == _without_timing(api_eval.to_dict())
    written = json.loads(Path(cli_eval["report"]).read_text())
    assert _without_timing(written["results"]) == _without_timing(api_eval.to_dict()["results"])
    assert written["gates"] == api_eval.to_dict()["gates"] and api_eval.gates.passed
    for name in ("report.md", "report.json", "questions.csv", "metrics.png", "quality_latency.png"):
        assert (api_eval.report.parent / name).is_file() and (Path(cli_eval["report"]).parent / name).is_file()


def test_ask_shows_the_evidence_of_its_answer(config_file):
    _invoke("ingest", "-c", config_file, "--json")
    args = ("what is the meal limit ?", "--mode", "rag", "-c", config_file, "--set", "generator.answer_style=extractive")
    shown = _invoke("ask", *args)
    assert shown.exit_code == 0, shown.output
    answer = json.loads(_invoke("ask", *args, "--json").stdout)
    assert answer["evidence"] and all(e["uri"].startswith("file://") for e in answer["evidence"])
    assert all(f'evidence "{e["text"]}"' in " ".join(shown.output.split()) for e in answer["evidence"])
