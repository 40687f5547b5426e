"""`ragtune demo`: the whole product on a fictional company, offline, in minutes.

Ingests the bundled Quillfeather Labs documents, synthesizes the Q/A set, trains the
adapter, evaluates the four modes on 40 hand-written held-out questions, writes a
report to the workspace and shows two questions answered side by side.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

from framework.config import load_config
from framework.project import Project

MODES = ("prompt_only", "rag", "finetuned", "combined")


def demo_dir() -> Path:
    return Path(str(resources.files("framework") / "demo"))


def run_demo(*, workspace: Path, overrides: Sequence[str] = (), say: Callable[[str], None] = print,
             show_progress: bool = True) -> dict:
    cfg = load_config(demo_dir() / "ragtune.yaml", [f"workspace={workspace}", *overrides])
    project = Project(cfg, show_progress=show_progress)
    timings: dict[str, float] = {}

    def step(name: str, fn):
        say(f"[{name}]")
        start = time.perf_counter()
        result = fn()
        timings[name] = round(time.perf_counter() - start, 1)
        return result

    report = step("ingest", project.ingest)
    say(f"  {report.to_dict()['documents']}, {report.chunks_embedded} chunks embedded")
    card = step("synthesize", project.synthesize)
    say(f"  generated {card['generated']}, kept {card['kept']}, dropped {card['dropped']}, split {card['split']}")
    manifest = step("finetune", project.finetune)
    say(f"  adapter {manifest['name']}/{manifest['version']}: {manifest['metrics']}")
    questions = demo_dir() / "questions.jsonl"
    results = step("evaluate", lambda: project.evaluate(questions, modes=MODES))
    return {"project": project, "results": results, "timings": timings, "card": card, "manifest": manifest}
