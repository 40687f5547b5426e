"""`ragtune demo`: the whole product on a fictional company, offline, in minutes.

Ingests the bundled Quillfeather Labs documents, synthesizes the Q/A set, trains the
adapter, evaluates the four modes on 40 hand-written held-out questions, writes a
report to the workspace and shows two questions answered side by side.
"""

from __future__ import annotations

import dataclasses
import time
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

from framework.evaluation.questions import load_questions
from framework.evaluation.report import write_report
from framework.evaluation.run import evaluate
from framework.project import Project, load_config
from framework.records import ANSWER_MODES
from framework.runtime.device import peak_resident_bytes

SIDE_BY_SIDE = ("How long do I have to hand in my receipts?", "What does the cheapest Lumen Ledger plan cost?")


def demo_dir() -> Path:
    return Path(str(resources.files("framework") / "demo"))


def run_demo(*, workspace: Path, overrides: Sequence[str] = (), say: Callable[[str], None] = print,
             show_progress: bool = True) -> dict:
    # The workspace is relative to where the demo runs, never to the installed package (which may be read-only).
    cfg = load_config(demo_dir() / "ragtune.yaml", [f"workspace={Path(workspace).expanduser().resolve()}", *overrides])
    project = Project(cfg, show_progress=show_progress)
    timings: dict[str, float] = {}
    peaks: dict[str, float] = {}  # the process's peak resident memory at the end of each step, GB

    def step(name: str, fn):
        say(f"[{name}]")
        start = time.perf_counter()
        result = fn()
        timings[name] = round(time.perf_counter() - start, 1)
        peaks[name] = round(peak_resident_bytes() / 1e9, 2)
        say(f"  {name}: {timings[name]} s; peak resident memory so far {peaks[name]} GB")
        return result

    report = step("ingest", project.ingest)
    say(f"  {report.to_dict()['documents']}, {report.chunks_embedded} chunks embedded")
    card = step("synthesize", project.synthesize)
    say(f"  generated {card.generated}, kept {card.kept}, dropped {dict(card.dropped)}, split {dict(card.split)}")
    manifest = step("finetune", lambda: project.finetune(promote=True))
    say(f"  adapter {manifest.name}/{manifest.version}: {dict(manifest.metrics)}")
    rows = load_questions(demo_dir() / "questions.jsonl")
    result = step("evaluate", lambda: evaluate(project.router, rows, modes=ANSWER_MODES, embedder=project.embedder,
                                               show_progress=show_progress))
    md = write_report(project.workspace, result, rows, title="ragtune demo",
                      extra={"timings_s": timings, "peak_memory_gb": peaks, "dataset": dict(card.split), "adapter": dict(manifest.metrics)})
    return {"project": project, "result": dataclasses.replace(result, report=md), "timings": timings,
            "peak_memory_gb": peaks, "card": card,
            "manifest": manifest}
