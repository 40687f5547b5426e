"""The three long steps of a refresh: synthesis, training, evaluation; each records itself in the state.

Each step first asks the state whether it is done (a resumed refresh skips it), and writes
the state once it is, so a kill inside a step repeats only that step: synthesis writes its
version atomically and reuses every cached chunk; training resumes from its last matching
checkpoint (`resume="auto"`), and a version it published before the state was written is
found again by the refresh id in its manifest; evaluation answers again.

Example:
    >>> cfg = training_config(FinetuneConfig(), RefreshConfig(epochs=1.0), warm_start=None)
    >>> cfg.epochs
    1.0
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from framework.adapters.registry import AdapterRef, AdapterRegistry
from framework.config import Config, FinetuneConfig, RefreshConfig
from framework.dataset.store import read_jsonl, resolve_dataset_dir
from framework.evaluation.gate import Condition
from framework.evaluation.promotion import combined_gate
from framework.evaluation.results import EvaluationResult
from framework.records import Principal
from framework.refresh.examples import evaluation_rows, example_counts, row_identity, training_rows
from framework.refresh.gate import check_refresh_gate
from framework.refresh.plan import RefreshPlan
from framework.refresh.state import RefreshState, save_state
from framework.workspace import Workspace

SHAPE = ("rank", "alpha", "dropout", "target_modules")  # a warm start keeps the starting adapter's LoRA shape
SUMMARY_METRICS = ("token_f1", "answer_recall", "semantic_similarity")


def training_config(cfg: FinetuneConfig, refresh: RefreshConfig, *, warm_start: AdapterRef | None) -> FinetuneConfig:
    """`finetune` with the refresh's epochs, steps and learning rate, and a warm start's LoRA shape."""
    update: dict[str, Any] = {k: v for k in ("epochs", "max_steps", "learning_rate")
                              if (v := getattr(refresh, k)) is not None}
    if warm_start is not None:
        hp = warm_start.manifest.hyperparameters
        update |= {k: hp[k] for k in SHAPE if k in hp}
    return cfg.model_copy(update=update)


def dataset_folder(workspace: Workspace, config: Config, version: str) -> Path:
    return resolve_dataset_dir(workspace.datasets, config.dataset.name, version)


def synthesized(state: RefreshState, *, folder: Path, workspace: Workspace, config: Config,
                synthesize: Callable[[], Any]) -> RefreshState:
    """The dataset version of the current chunks (synthesis regenerates only new and changed chunks)."""
    if state.dataset_version and (dataset_folder(workspace, config, state.dataset_version) / "card.json").is_file():
        return state
    start = time.perf_counter()
    card = synthesize()
    state = dataclasses.replace(state, dataset_version=card.version).add_seconds(synthesize=time.perf_counter() - start)
    return save_state(folder, state)


def chosen_rows(state: RefreshState, plan: RefreshPlan, *, workspace: Workspace,
                config: Config) -> tuple[list[dict] | None, dict, str]:
    """The rows to train on (None: the whole version, from scratch), their counts, and why from scratch."""
    rows = read_jsonl(dataset_folder(workspace, config, state.dataset_version) / "train.jsonl")
    old = plan.dataset_dir(workspace.datasets) / "train.jsonl"
    learned = {row_identity(r) for r in read_jsonl(old)} if old.is_file() else None
    chosen, counts = training_rows(rows, learned=learned, new=plan.delta.new, replay=config.refresh.replay,
                                   seed=config.refresh.seed)
    if plan.warm_start and counts["new"]:
        return chosen, example_counts(counts["new"], counts["unchanged"], replay=config.refresh.replay,
                                      warm_start=True), ""
    why = plan.why_from_scratch or "the new and changed chunks gave no training example (see the dataset card)"
    return None, example_counts(counts["new"], counts["unchanged"], replay=config.refresh.replay,
                                warm_start=False), why


def trained(state: RefreshState, *, folder: Path, rows: Sequence[dict] | None, serving: AdapterRef,
            registry: AdapterRegistry, train: Callable[..., Any]) -> RefreshState:
    """The candidate version: found again by this refresh's id, or trained now."""
    if state.candidate:
        return state
    adopted = next((r for r in registry.versions(serving.name) if r.manifest.refresh.get("id") == state.id), None)
    start = time.perf_counter()
    manifest = adopted.manifest if adopted else \
        train(rows=rows, warm_start=serving if rows is not None else None,
              refresh={"id": state.id, "serving_before": serving.version, "examples": dict(state.examples)})
    state = dataclasses.replace(state, candidate=manifest.version).add_seconds(train=time.perf_counter() - start)
    return save_state(folder, state)


def _summary(result: EvaluationResult, candidate: str, serving: str, kinds: Sequence[str]) -> dict:
    out = {}
    for kind in (None, *kinds):
        out["all" if kind is None else kind] = {
            m: {"serving": result.estimate(serving, m, kind).to_dict(),
                "candidate": result.estimate(candidate, m, kind).to_dict(),
                "difference": result.difference(candidate, m, kind).to_dict()} for m in SUMMARY_METRICS}
    return out


def evaluated(state: RefreshState, *, folder: Path, workspace: Workspace, config: Config, plan: RefreshPlan,
              extra: Sequence[dict], conditions: Sequence[Condition], settings: str,
              evaluate: Callable[..., EvaluationResult]) -> RefreshState:
    """Candidate against the serving version on the same questions, and the gate's verdict."""
    if state.verdict is not None:
        return state
    start = time.perf_counter()
    data = dataset_folder(workspace, config, state.dataset_version)
    rc, name, mode = config.refresh, plan.adapter, config.refresh.mode
    before = plan.dataset_dir(workspace.datasets)  # the serving version's rows: the old values of changed facts
    rows = evaluation_rows(read_jsonl(data / "train.jsonl"), read_jsonl(data / "eval.jsonl"), plan.delta.new,
                           changed=rc.changed_questions, unchanged=rc.unchanged_questions, seed=rc.seed, extra=extra,
                           old=[r for f in ("train.jsonl", "eval.jsonl") if (before / f).is_file()
                                for r in read_jsonl(before / f)])
    candidate, serving = f"{mode}@{name}@{state.candidate}", f"{mode}@{name}@{state.serving}"
    result = evaluate(rows, modes=[mode], adapters=[f"{name}@{state.serving}", f"{name}@{state.candidate}"],
                      baseline=serving, principal=Principal(user="refresh", groups=tuple(config.dataset.audience)),
                      title=f"ragtune refresh {state.id}: {name} {state.serving} -> {state.candidate}",
                      extra={"refresh": state.id})
    gate = check_refresh_gate(result, conditions, candidate=candidate, serving=serving, rows=rows)
    combo = combined_gate(evaluate, rows, spec=f"{name}@{state.candidate}", conditions=config.finetune.gate,
                          principal=Principal(user="refresh", groups=tuple(config.dataset.audience)),
                          title=f"ragtune refresh {state.id}: combined against rag, {name} {state.candidate}")
    gate = dataclasses.replace(gate, checks=gate.checks + combo.checks)  # and combined not worse than rag
    kinds = sorted(Counter(r["split_kind"] for r in rows))
    verdict = {**gate.to_dict(), "settings": settings, "report": str(result.report.parent) if result.report else None,
               "questions": dict(sorted(Counter(r["split_kind"] for r in rows).items())),
               "metrics": _summary(result, candidate, serving, kinds)}
    state = dataclasses.replace(state, verdict=json.loads(json.dumps(verdict)))
    return save_state(folder, state.add_seconds(evaluate=time.perf_counter() - start))


def verdict_summary(verdict: Mapping) -> dict:
    """The evaluation part of the report."""
    return {k: verdict.get(k) for k in ("questions", "report", "metrics")}
