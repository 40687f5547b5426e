"""`ragtune refresh` on the demo corpus against a from-scratch synth + finetune (opt in: -m benchmark).

    pytest tests/benchmarks/bench_refresh.py -m benchmark -s

The demo project (framework/demo: five documents, the bundled models) is trained and its
adapter promoted (v0001). Then the employee handbook changes: three facts altered (annual
leave 28 -> 30 days, remote work 3 -> 2 days a week, office hours 07:00-21:00 -> 08:00-20:00),
one section deleted (the all-hands meeting), one added (bicycle parking). One `refresh()`
takes the corpus to v0002, evaluated against v0001 on the eval split, trained questions and
the questions below (`refresh.questions`), gated and promoted. For comparison, a fresh
workspace runs synth + finetune from scratch on the changed corpus (BENCH_SCRATCH=0 skips it
and uses v0001's own synth + finetune time instead).

Printed: the refresh's time (all of it, and without its evaluation) against from-scratch
synth + finetune (target: at most 30%); the share of questions on the changed facts answered
with the new value (and not the old one) by v0001, v0002 and the scratch adapter; the share
of questions on the deleted section still answered with its old facts; the token F1 of v0001
and v0002 on the 37 demo questions about unchanged facts, with intervals (target: v0002
within v0001's interval); the gate's verdict.

Smaller settings for a smoke run (the figures then mean nothing):
    BENCH_MODEL=tiny BENCH_EMBEDDER=hashing BENCH_MAX_STEPS=2 BENCH_REFRESH_EPOCHS=1 BENCH_QUESTIONS=5 ...
BENCH_EPOCHS (default 3): epochs of the from-scratch training (v0001 and the scratch adapter);
the demo itself trains one epoch to fit its 10 minutes, a team training for real would not.
BENCH_MODEL: bundled (default), tiny (the tests' few-thousand-parameter model) or a folder;
BENCH_REFRESH_EPOCHS (default 2), BENCH_REPLAY (0.2), BENCH_QUESTIONS (trained questions
per side, 20).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from framework.cli.demo import demo_dir
from framework.dataset.store import read_jsonl
from framework.project import Project, load_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import build_tiny_model  # noqa: E402

HANDBOOK = "employee-handbook.md"
ALTERED = [  # old sentence, new sentence, (new value, old value), questions on it
    ("Every employee receives 28 calendar days of annual leave per year.",
     "Every employee receives 30 calendar days of annual leave per year.", ("30", "28"),
     ["How many days of annual leave do I get each year?", "How many calendar days of annual leave does every "
                                                           "employee receive per year?"]),
    ("Employees may work remotely up to 3 days per week.", "Employees may work remotely up to 2 days per week.",
     ("2 days", "3 days"), ["How many days a week am I allowed to work from home?",
                            "Up to how many days per week may employees work remotely?"]),
    ("The office is open from 07:00 to 21:00 on working days.", "The office is open from 08:00 to 20:00 on working days.",
     ("08:00", "07:00"), ["When is the office open on working days?", "From what time is the office open on working "
                                                                      "days?"]),
]
ADDED = ("## Bicycle Parking\n\nThe bicycle storage room is called the Spoke Shed. The Spoke Shed has space for 24 "
         "bicycles and is open from 06:00 to 23:00.\n\n", [("What is the bicycle storage room called?", "Spoke Shed"),
                                                          ("How many bicycles fit in the Spoke Shed?", "24")])
DELETED_HEADING, DELETED_FACTS = "## All-Hands Meeting", ("Thursday", "16:00")
DELETED_QUESTIONS = ["When does the weekly company all-hands happen?", "How long does the all-hands meeting last?"]
CHANGED_IDS = {"q02", "q04", "q06"}  # demo questions whose facts changed or went


def _settings(tmp: Path) -> list[str]:
    model = os.environ.get("BENCH_MODEL", "bundled")
    if model == "tiny":
        model = str(build_tiny_model(tmp / "tiny-model"))
    steps = os.environ.get("BENCH_MAX_STEPS", "-1")
    return [f"generator.model={model}", f"index.embedder={os.environ.get('BENCH_EMBEDDER', 'bundled')}",
            f"finetune.max_steps={steps}", "finetune.save_steps=0", f"refresh.max_steps={steps}",
            f"finetune.epochs={os.environ.get('BENCH_EPOCHS', '3')}",
            f"refresh.epochs={os.environ.get('BENCH_REFRESH_EPOCHS', '2')}",
            f"refresh.replay={os.environ.get('BENCH_REPLAY', '0.2')}",
            f"refresh.changed_questions={os.environ.get('BENCH_QUESTIONS', '20')}",
            f"refresh.unchanged_questions={os.environ.get('BENCH_QUESTIONS', '20')}"]


def _change(docs: Path) -> None:
    path = docs / HANDBOOK
    text = path.read_text()
    for old, new, _, _ in ALTERED:
        assert old in text
        text = text.replace(old, new)
    start = text.index(DELETED_HEADING)
    end = text.index("## ", start + 3)
    path.write_text(text[:start] + ADDED[0] + text[end:])


def _questions(path: Path) -> None:
    rows = [{"question": q, "answer": new, "split_kind": "changed_facts", "document": HANDBOOK}
            for old, new, _, qs in ALTERED for q in qs]
    rows += [{"question": q, "answer": a, "split_kind": "added_facts", "document": HANDBOOK} for q, a in ADDED[1]]
    rows += [{"question": q, "answer": "The handbook no longer says.", "split_kind": "deleted_facts"}
             for q in DELETED_QUESTIONS]
    rows += [{**r, "split_kind": "unchanged_facts"} for r in read_jsonl(demo_dir() / "questions.jsonl")
             if r["id"] not in CHANGED_IDS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _project(tmp: Path, name: str, docs: Path, settings: list[str], extra: list[str] = ()) -> Project:
    overrides = [f"workspace={tmp / name}", f"sources.0.path={docs}", *settings, *extra]
    return Project(load_config(demo_dir() / "ragtune.yaml", overrides), show_progress=False)


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _shares(answers: dict[str, str]) -> dict[str, float]:
    """Per kind: changed facts answered with the new value only, added facts with theirs, deleted ones asserted."""
    changed = [q for _, _, _, qs in ALTERED for q in qs]
    values = {q: v for _, _, v, qs in ALTERED for q in qs}
    new = [values[q][0] in answers[q] and values[q][1] not in answers[q] for q in changed]
    added = [a in answers[q] for q, a in ADDED[1]]
    deleted = [any(f in answers[q] for f in DELETED_FACTS) for q in DELETED_QUESTIONS]
    return {"changed facts, new answer": sum(new) / len(new), "added facts": sum(added) / len(added),
            "deleted facts still asserted": sum(deleted) / len(deleted)}


def _answers(report_json: Path, label: str) -> dict[str, str]:
    return {a["question"]: a["text"] for a in json.loads(report_json.read_text())["results"][label]["answers"]}


@pytest.mark.benchmark
@pytest.mark.timeout(7200)
def test_bench_refresh_demo(tmp_path):
    docs = tmp_path / "documents"
    shutil.copytree(demo_dir() / "documents", docs)
    settings = _settings(tmp_path)
    _questions(tmp_path / "questions.jsonl")
    project = _project(tmp_path, "ws", docs, settings, [f"refresh.questions={tmp_path / 'questions.jsonl'}"])
    project.ingest()
    (_, first_synth) = _timed(project.synthesize)
    (_, first_train) = _timed(lambda: project.finetune(promote=True))
    _change(docs)
    report, refresh_s = _timed(project.refresh)
    print(f"\nrefresh: {report.outcome}: {report.message}\nseconds: {dict(report.seconds)}\n"
          f"examples: {dict(report.examples)}\nplan: {report.plan.get('chunks')} {report.plan.get('documents')}")
    scratch_s, scratch_answers = first_synth + first_train, None
    if os.environ.get("BENCH_SCRATCH", "1") == "1":
        scratch = _project(tmp_path, "scratch", docs, settings)
        scratch.ingest()
        (_, synth_s), (_, train_s) = _timed(scratch.synthesize), _timed(lambda: scratch.finetune(promote=True))
        scratch_s = synth_s + train_s
        rows = [r for r in read_jsonl(tmp_path / "questions.jsonl") if r["split_kind"] != "unchanged_facts"]
        result = scratch.evaluate(rows, modes=["finetuned"], title="bench_refresh: from scratch")
        scratch_answers = {a.question: a.text for a in result.mode("finetuned").answers}
    without_eval = refresh_s - report.seconds.get("evaluate", 0.0)
    print(f"\ntime: refresh {refresh_s:.0f}s ({without_eval:.0f}s without its evaluation) vs from-scratch synth + "
          f"finetune {scratch_s:.0f}s: {100 * refresh_s / scratch_s:.0f}% ({100 * without_eval / scratch_s:.0f}% "
          "without the evaluation); target <= 30%")
    assert report.outcome in ("promoted", "gate_failed") and report.candidate
    evaluation = Path(report.evaluation["report"]) / "report.json"
    name = project.config.finetune.adapter
    rows = {"v0001 (serving)": _answers(evaluation, f"finetuned@{name}@{report.serving_before}"),
            f"{report.candidate} (refresh)": _answers(evaluation, f"finetuned@{name}@{report.candidate}")}
    if scratch_answers:
        rows["from scratch"] = scratch_answers
    for label, answers in rows.items():
        print(f"{label:<18} " + ", ".join(f"{k} {v:.2f}" for k, v in _shares(answers).items()))
    f1 = report.evaluation["metrics"]["unchanged_facts"]["token_f1"]
    s, c, d = f1["serving"], f1["candidate"], f1["difference"]
    print(f"unchanged facts ({report.evaluation['questions']['unchanged_facts']} questions), token F1: serving "
          f"{s['value']:.3f} ({s['low']:.3f}-{s['high']:.3f}), refresh {c['value']:.3f} ({c['low']:.3f}-"
          f"{c['high']:.3f}), difference {d['value']:+.3f} ({d['low']:+.3f}-{d['high']:+.3f}); "
          f"within the serving interval: {s['low'] <= c['value']}")
    for check in report.gate["checks"]:
        print(f"gate {'pass' if check['passed'] else 'FAIL'}: {check['condition']}: {check['reason']}")
    print(f"report: {report.report}")
