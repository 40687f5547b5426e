"""`ragtune eval` end to end on a tiny model: CSV questions, refused rows, versions side by side,
the report folder, and the gate's exit code."""

import csv
import json

import pytest
import yaml
from typer.testing import CliRunner

from framework.cli.main import app
from framework.evaluation.questions import load_questions
from framework.project import Project, load_config_dict

from conftest import project_config

QUESTIONS = """question,answer,sources,split_kind
how many days of annual leave ?,every employee receives 28 days of annual leave per year .,handbook.md,hr
what is the meal limit ?,the meal limit is 45 eur per day .,policies/expenses.txt,finance
what is the vpn client called ?,the vpn client is called tunnelwise .,security.html,
"""


@pytest.fixture
def setup(tmp_path, corpus, tiny_model):
    cfg = project_config(tmp_path, corpus, tiny_model)
    project = Project(load_config_dict(cfg), show_progress=False)
    project.ingest()
    (tmp_path / "q.csv").write_text(QUESTIONS)
    (tmp_path / "ragtune.yaml").write_text(yaml.safe_dump(cfg))
    return project, tmp_path


def test_csv_questions_a_refused_row_and_the_report_folder(setup):
    project, tmp_path = setup
    result = project.evaluate(tmp_path / "q.csv", modes=["prompt_only", "rag", "finetuned"])
    assert result.labels == ("prompt_only", "rag", "finetuned") and result.baseline == "rag"
    assert "ragtune finetune" in result.mode("finetuned").refused and not result.mode("finetuned").answers
    rag = result.mode("rag")
    assert len(rag.answers) == 3 and set(rag.by_split_kind) == {"hr", "finance"}
    assert rag.metrics["retrieval_hit"].n == 3 and 0 <= rag.metrics["groundedness"].value <= 1
    assert result.estimate("prompt_only", "groundedness").value is None
    assert [c.label for c in result.comparisons] == ["prompt_only"] * 3  # all, finance, hr
    folder = result.report.parent
    assert folder.parent == project.workspace.reports
    md = result.report.read_text()
    assert "**finetuned** refused:" in md and "## Paired differences against `rag` (all questions)" in md
    with (folder / "questions.csv").open() as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 6 and {r["row"] for r in lines} == {"prompt_only", "rag"}
    assert lines[3]["gold_sources"] == "handbook.md" and lines[3]["retrieval_rank"] != ""
    for png in ("metrics.png", "quality_latency.png", "metrics_hr.png", "metrics_finance.png"):
        assert (folder / png).read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((folder / "report.json").read_text())
    assert saved["results"]["finetuned"]["refused"] and saved["results"]["rag"]["answers"][0]["scores"]


def test_adapter_versions_side_by_side(setup):
    project, _ = setup
    project.synthesize()
    first, second = project.finetune(), project.finetune()
    rows = [{"question": "how many days of annual leave ?", "answer": "28 days"}]
    result = project.evaluate(rows, modes=["rag", "finetuned"], adapters=["v0001", "v0002", "v0009"],
                              baseline="finetuned@v0001")
    assert result.labels == ("rag", "finetuned@v0001", "finetuned@v0002", "finetuned@v0009")
    assert result.mode("finetuned@v0001").adapter == f"t-{first.version}"
    assert result.mode("finetuned@v0002").adapter == f"t-{second.version}"
    assert "v0009" in result.mode("finetuned@v0009").refused
    assert {c.label for c in result.comparisons} == {"rag", "finetuned@v0002"}


def _eval(tmp_path, *args):
    return CliRunner().invoke(app, ["eval", "-c", str(tmp_path / "ragtune.yaml"), "-q", str(tmp_path / "q.csv"),
                                    "--modes", "prompt_only,rag", *args])


def test_a_failing_gate_exits_4_saying_which_and_by_how_much(setup):
    _, tmp_path = setup
    result = _eval(tmp_path, "--gate", "rag.token_f1 >= 0", "--gate", "rag.token_f1 > 1.5")
    assert result.exit_code == 4, result.output
    assert "PASS rag.token_f1 >= 0" in result.output and "FAIL rag.token_f1 > 1.5" in result.output
    assert "left - right = -" in result.output and "gate failed: rag.token_f1 > 1.5" in result.output
    assert _eval(tmp_path, "--gate", "rag.token_f1 >= 0").exit_code == 0


def test_bad_input_is_a_clear_error_before_anything_runs(setup):
    _, tmp_path = setup
    result = _eval(tmp_path, "--gate", "rag.token_f1 => 0.3")
    assert result.exit_code == 2 and "unexpected '=' at column 14" in result.output
    result = _eval(tmp_path, "--gate", "combined.token_f1 >= 0")
    assert result.exit_code == 2 and "no row 'combined'" in result.output
    result = _eval(tmp_path, "--baseline", "auto")
    assert result.exit_code == 1 and "baseline 'auto' is not among the evaluated rows" in result.output


def test_question_files_name_the_line_and_column(tmp_path):
    f = tmp_path / "q.csv"
    f.write_text("question,reply\na?,b\n")
    with pytest.raises(ValueError, match=r"q.csv:1: the header has no column 'answer' \(columns: question, reply\)"):
        load_questions(f)
    f.write_text("question,answer\na?,b\nc?,\n")
    with pytest.raises(ValueError, match=r"q.csv:3: field 'answer' is missing or empty"):
        load_questions(f)
    f.write_text('question,answer\n"multi\nline?",b\nc?,d,e\n')
    with pytest.raises(ValueError, match=r"q.csv:4: more cells than the header"):
        load_questions(f)
    g = tmp_path / "q.txt"
    g.write_text("x")
    with pytest.raises(ValueError, match="use .jsonl"):
        load_questions(g)
