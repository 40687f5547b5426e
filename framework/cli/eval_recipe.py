"""The command line of the real-data evaluation recipes (recipes/eval_*.py).

A recipe loads its data set: documents as text (one file each) and reference questions
whose `sources` name their gold documents. This runner does the rest within
`--budget-minutes`:

1. plan the budget and pick the subset (framework.evaluation.subset): questions on
   trained documents, questions on untrained ones, distractor documents;
2. write the documents under <workspace>/corpus/: `trained/` and `indexed/` (the rest);
3. ingest `trained/` only and synthesize the Q/A set from it, so the adapter learns only
   those documents; estimate the training (tokens counted, speed measured) and the
   evaluation (a few questions answered in rag and prompt_only, timed), and cap the
   training steps to the time left;
4. train, then ingest `indexed/` as well: retrieval sees every document of the subset;
5. evaluate the four modes on the subset's questions, reported overall and per split
   kind (`trained_documents`, `untrained_documents`), with intervals and the report folder.

Example:
    >>> from framework.cli.eval_recipe import run_eval_recipe   # in a recipe: run_eval_recipe(__doc__, __file__, ...)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import yaml
from rich.console import Console
from rich.markup import escape

from framework.cli.common import PlainWidthConsole, _quiet_libraries
from framework.cli.eval_view import show
from framework.evaluation.subset import Subset, pick_subset, plan_budget
from framework.project import Project, load_config_dict
from framework.records import ANSWER_MODES


@dataclass(frozen=True)
class SharedSet:
    documents: Mapping[str, str]  # file name -> text
    questions: list[dict]  # question, answer, sources: the gold documents' file names


def _parser(doc: str, script: str, name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-minutes", type=float, default=60.0, help="wall time to fit (default 60, on 2 cores)")
    p.add_argument("--questions", type=int, help="questions to sample instead of the budget's number")
    p.add_argument("--data", default=str(Path(script).resolve().parents[2] / "shared" / "datasets" / name),
                   help="the data set folder (default: ../shared/datasets/NAME beside the repository: %(default)s)")
    p.add_argument("--workspace", default=f".ragtune-eval-{name}")
    p.add_argument("--config", default=str(Path(script).with_suffix(".yaml")))
    p.add_argument("--set", action="append", default=[], help="config override: key.path=value")
    p.add_argument("--seed", type=int, default=0, help="which questions are sampled")
    return p


def _write_corpus(ws: Path, shared: SharedSet, subset: Subset) -> dict[str, Path]:
    folders = {"trained": ws / "corpus" / "trained", "indexed": ws / "corpus" / "indexed"}
    shutil.rmtree(ws / "corpus", ignore_errors=True)
    for key, names in (("trained", subset.trained), ("indexed", subset.untrained + subset.distractors)):
        folders[key].mkdir(parents=True)
        for name in names:
            (folders[key] / name).write_text(shared.documents[name], encoding="utf-8")
    (ws / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in subset.questions))
    return folders


def _project(data: dict, overrides: list[str], base: Path, ws: Path, folders: dict, names: list[str],
             **kw) -> Project:
    sources = [{"name": n, "type": "files", "path": str(folders[n]), "public": True} for n in names]
    return Project(load_config_dict({**data, "workspace": str(ws), "sources": sources}, overrides, base), **kw)


def answer_seconds(project: Project, questions, k: int = 4) -> float:
    """Seconds the four modes take per question, measured on `k` questions in rag and prompt_only
    (combined and finetuned cost about the same as these, each with an adapter added)."""
    batch = [q["question"] for q in questions[:k]]
    project.router  # noqa: B018 - load the generator before timing
    seconds = 0.0
    for mode in ("rag", "prompt_only"):
        t = time.perf_counter()
        project.ask_many(batch, mode=mode)
        seconds += 2 * (time.perf_counter() - t) / len(batch)
    return seconds


def run_eval_recipe(doc: str, script: str, *, name: str, load: Callable[[Path], SharedSet]) -> None:
    """Parse the recipe's arguments and run steps 1-5 of the module docstring; `load` reads the data set."""
    args = _parser(doc, script, name).parse_args()
    data = Path(args.data)
    if not data.is_dir():
        sys.exit(f"{name}: data set folder {data} not found; this recipe needs the shared data sets "
                 "(../shared/datasets from the repository root) or --data PATH. Nothing was run.")
    start, say, timings = time.perf_counter(), Console(stderr=True).print, {}
    _quiet_libraries()

    def step(label: str, fn):
        say(f"[bold]{escape(f'[{label}]')}[/bold]")
        t = time.perf_counter()
        result = fn()
        timings[label] = round(time.perf_counter() - t, 1)
        return result

    shared = load(data)
    budget = plan_budget(args.budget_minutes, available=len(shared.questions))
    words = {k: len(v.split()) for k, v in shared.documents.items()}
    subset = pick_subset(shared.questions, words, n_questions=args.questions or budget.questions,
                         max_trained_words=budget.trained_words, seed=args.seed)
    say(f"budget {budget}; subset {subset.to_dict()['questions']}, {len(subset.trained)} trained documents "
        f"({sum(words[d] for d in subset.trained):,} words), {len(subset.untrained)} untrained, "
        f"{len(subset.distractors)} distractors", highlight=False)
    ws = Path(args.workspace).resolve()
    folders = _write_corpus(ws, shared, subset)
    cfg, base = yaml.safe_load(Path(args.config).read_text()), Path(args.config).resolve().parent
    first = _project(cfg, args.set, base, ws, folders, ["trained"])
    step("ingest trained documents", first.ingest)
    card = step("synthesize", first.synthesize)
    say(f"dataset {card.version}: {dict(card.split)}", highlight=False)
    estimate = step("estimate", first.estimate_finetune)
    say(estimate.describe(), highlight=False)
    per_question = step("time the answers", lambda: answer_seconds(first, subset.questions))
    eval_s = len(subset.questions) * per_question
    say(f"evaluation estimate: {len(subset.questions)} questions x {per_question:.1f} s for the four modes "
        f"= {eval_s:.0f} s", highlight=False)
    left = args.budget_minutes * 60 - (time.perf_counter() - start) - eval_s
    steps = estimate.steps if estimate.seconds <= left else max(2, int(estimate.steps * max(left, 0) / estimate.seconds))
    if steps < estimate.steps:
        say(f"[yellow]training capped at {steps} of {estimate.steps} steps to fit the budget[/yellow]")
    cap = [f"finetune.max_steps={steps}"] if steps < estimate.steps else []
    trained = _project(cfg, [*args.set, *cap], base, ws, folders, ["trained"], embedder=first.embedder)
    manifest = step("finetune", lambda: trained.finetune(promote=True))
    both = _project(cfg, args.set, base, ws, folders, ["trained", "indexed"], embedder=first.embedder)
    step("ingest the other documents", both.ingest)
    extra = {"subset": subset.to_dict(), "budget": dataclasses.asdict(budget), "estimate": estimate.to_dict(),
             "evaluation_estimate_s": round(eval_s, 1),
             "adapter": {"version": manifest.version, "max_steps": steps, **manifest.metrics}, "timings_s": timings}
    result = step("evaluate", lambda: both.evaluate(list(subset.questions), modes=ANSWER_MODES,
                                                    title=f"{name}: four modes on trained and untrained documents",
                                                    extra=extra))
    timings["total"] = round(time.perf_counter() - start, 1)
    saved = result.report.with_suffix(".json")  # the report was written before the evaluation's time was known
    saved.write_text(json.dumps({**json.loads(saved.read_text()), "timings_s": timings}, indent=2, ensure_ascii=False))
    show(result, PlainWidthConsole())
    print(f"timings (s): {timings}; budget {args.budget_minutes:g} min")
    print(f"report: {result.report.parent}")
