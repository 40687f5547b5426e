"""`ragtune refresh`: changed documents to a new, gated, promoted adapter version in one run.

ingest (changes only) -> plan: what the serving version has not learned (framework.refresh.plan)
-> synthesis of the new and changed chunks (the rest comes from the cache) -> training of a
candidate warm-started from the serving version, on the new and changed examples plus a replay
sample -> evaluation of candidate against serving version -> promotion if `refresh.gate` passes
-> the report (framework.refresh.report).

Crash-safe: the state after each step is on disk (framework.refresh.state), a rerun resumes
the same plan after its last finished step, and the serving version changes only in the last
step. Nothing changed since the last refresh returns at once. A candidate the gate rejected
stays unpromoted and is not trained again for the same changes (evaluated again if the gate or
questions changed; `force=True` trains a new one).

Example:
    >>> report = project.refresh()                     # doctest: +SKIP
    >>> report.outcome, report.serving_after           # doctest: +SKIP
    ('promoted', 'v0004')
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from framework.adapters.registry import AdapterError, AdapterRef, AdapterRegistry, parse_spec
from framework.config import Config
from framework.dataset.card import DatasetCard
from framework.dataset.store import read_jsonl
from framework.evaluation.questions import load_questions
from framework.evaluation.results import EvaluationResult
from framework.ingest.ledger import Ledger
from framework.ingest.pipeline import IngestReport
from framework.records import Chunk
from framework.refresh import steps
from framework.refresh.dry_run import plan_report
from framework.refresh.examples import CHANGED, FILE_KIND, UNCHANGED, removed_rows
from framework.refresh.gate import parse_refresh_gate
from framework.refresh.plan import RefreshPlan, make_plan
from framework.refresh.report import RefreshReport, write_report
from framework.refresh.state import RefreshState, clear_state, load_last, load_state, refresh_lock, save_last, save_state
from framework.runtime.device import resolve_device
from framework.serving.router import served_version
from framework.training.checkpoints import NOT_IDENTITY
from framework.workspace import Workspace


@dataclass(frozen=True)
class Stages:
    """What the composition root hands a refresh: its own verbs and components, built on first use."""

    ingest: Callable[[], IngestReport]
    scan: Callable[[], dict[str, list[str]]]  # documents the next ingest would add, change, delete (dry run)
    chunks: Callable[[], list[Chunk]]  # every indexed chunk
    synthesize: Callable[[], DatasetCard]
    evaluate: Callable[..., EvaluationResult]  # Project.evaluate: questions, modes, adapters, baseline, principal...
    base_model_dir: Callable[[], Path]


@dataclass(frozen=True)
class _Run:
    stages: Stages
    config: Config
    workspace: Workspace
    registry: AdapterRegistry
    folder: Path
    conditions: tuple
    extra: tuple
    settings: str
    eval_settings: str
    callbacks: tuple
    show_progress: bool
    step: Callable[[str], None]


def serving_version(registry: AdapterRegistry, config: Config) -> AdapterRef:
    """The version a refresh starts from and replaces; an error saying what to do where there is none."""
    name = config.finetune.adapter
    if config.adapters.serve == "latest":
        raise AdapterError("a refresh promotes its candidate only when the gate passes, but adapters.serve: latest "
                           "serves every version as soon as it is published; set adapters.serve: promoted")
    spec, pinned = parse_spec(config.router.adapter), config.router.adapter_version
    if spec[0] == name and (spec[1] or pinned):
        raise AdapterError(f"router.adapter pins {name}@{spec[1] or pinned}, so a promotion would not change what "
                           "serves; remove the pin (router.adapter: NAME, no router.adapter_version) to refresh")
    version = served_version(registry, config.router, name)
    if version is None:
        raise AdapterError(f"no version of adapter {name!r} is served, and a refresh continues the served one; "
                           "train and promote the first with `ragtune synth` then `ragtune finetune --promote` "
                           f"(or `ragtune adapters promote {name} VERSION`)")
    return registry.get(name, version)


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def refresh(stages: Stages, *, config: Config, workspace: Workspace, registry: AdapterRegistry,
            dry_run: bool = False, force: bool = False, callbacks: Sequence = (),
            on_step: Callable[[str], None] | None = None, show_progress: bool = True) -> RefreshReport:
    """Run (or with `dry_run`, plan and estimate) a refresh of `finetune.adapter`; see the module docstring.

    `on_step` is called after each durable step (ingested, planned, synthesized, trained,
    evaluated, promoted); `callbacks` are Trainer callbacks for the training step."""
    rc = config.refresh
    extra = tuple(load_questions(Path(rc.questions))) if rc.questions else ()
    kinds = [CHANGED, UNCHANGED, *sorted({r.get("split_kind") or FILE_KIND for r in extra})]
    conditions = tuple(parse_refresh_gate(rc.gate, kinds=kinds))  # a typo fails before any work
    c = config
    settings = _fingerprint(c.dataset.model_dump(by_alias=True), c.finetune.model_dump(exclude=set(NOT_IDENTITY)),
                            rc.model_dump(include={"replay", "warm_start", "epochs", "max_steps", "learning_rate",
                                                   "seed"}), c.generator.model, c.precision)
    eval_settings = _fingerprint(rc.model_dump(), [dict(r) for r in extra])
    run = _Run(stages, config, workspace, registry, workspace.refresh(config.finetune.adapter), conditions, extra,
               settings, eval_settings, tuple(callbacks), show_progress, on_step or (lambda step: None))
    with refresh_lock(run.folder):
        serving = serving_version(registry, config)
        if dry_run:
            pending = stages.scan()
            plan = plan_for(run, serving, pending_new=bool(pending["new"] or pending["changed"]))
            return plan_report(plan, pending, serving=serving, config=config, datasets=workspace.datasets,
                               base_model_dir=stages.base_model_dir)
        return _refresh(run, serving, force=force)


def plan_for(run: _Run, serving: AdapterRef, *, pending_new: bool = False) -> RefreshPlan:
    c = run.config
    return make_plan(chunks=run.stages.chunks(), cfg=c.dataset, serving=serving, generator_model=c.generator.model,
                     datasets_root=run.workspace.datasets, ledger=run.workspace.ledger,
                     warm_start=c.refresh.warm_start, settings=run.settings, pending_new=pending_new)


def _ledger_fingerprint(workspace: Workspace) -> str:
    ledger = Ledger(workspace.ledger)
    try:
        return ledger.fingerprint()
    finally:
        ledger.close()


def _refresh(run: _Run, serving: AdapterRef, *, force: bool) -> RefreshReport:
    state, last, started = load_state(run.folder), load_last(run.folder), time.perf_counter()
    ingested = run.stages.ingest().to_dict()["documents"]
    run.step("ingested")
    ledger = _ledger_fingerprint(run.workspace)
    ingest_seconds = time.perf_counter() - started
    if state and state.verdict and state.verdict.get("passed") and state.candidate == serving.version:
        return _finish(run, state, serving=serving, ingested=ingested, ledger=ledger, plan=None)  # promoted, then killed
    unchanged = not any(ingested[k] for k in ("new", "changed", "deleted"))
    if state is None and unchanged and not force and \
            last.get("ledger") == ledger and last.get("serving") == serving.version and last.get("settings") == run.settings:
        return _nothing(run, serving, ingested, f"nothing changed since the last refresh ({last.get('at')})")
    plan = plan_for(run, serving)
    run.step("planned")
    if plan.empty:
        clear_state(run.folder)
        save_last(run.folder, {"outcome": "nothing_to_do", "at": _now(), "ledger": ledger, "serving": serving.version,
                               "settings": run.settings})
        return _nothing(run, serving, ingested, f"{serving.name}@{serving.version} already learned every current "
                                                "chunk; nothing to train")
    state = _current_state(run, state, plan, force=force)
    if state.verdict is not None and not state.verdict.get("passed"):
        return _report(run, state, plan, serving, ingested, outcome="gate_failed", resumed=True,
                       message=f"{serving.name}@{state.candidate} was already rejected for these changes and is not "
                               "trained again; see the gate below. Change the documents or refresh.gate, promote "
                               "it by hand, or retrain with --force")
    state = save_state(run.folder, state.add_seconds(ingest=ingest_seconds))
    return _train_and_gate(run, state, plan, serving, ingested, ledger)


def _current_state(run: _Run, state: RefreshState | None, plan: RefreshPlan, *, force: bool) -> RefreshState:
    """The state to continue: the interrupted one for the same plan, else a new one."""
    fresh = RefreshState(id=datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ"), fingerprint=plan.fingerprint,
                         serving=plan.serving, started_at=_now())
    if state is None or state.fingerprint != plan.fingerprint:
        return fresh
    if state.candidate and state.candidate not in {r.version for r in run.registry.versions(plan.adapter)}:
        state = dataclasses.replace(state, candidate=None, verdict=None)  # its candidate was deleted: train again
    if force and state.verdict is not None and not state.verdict.get("passed"):
        return dataclasses.replace(fresh, dataset_version=state.dataset_version)  # same data, a new candidate
    if state.verdict is not None and state.verdict.get("settings") != run.eval_settings:
        state = dataclasses.replace(state, verdict=None)  # the gate or the questions changed: evaluate again
    return dataclasses.replace(state, runs=state.runs + 1)


def _train_and_gate(run: _Run, state: RefreshState, plan: RefreshPlan, serving: AdapterRef, ingested: dict,
                    ledger: str) -> RefreshReport:
    c, ws = run.config, run.workspace
    state = steps.synthesized(state, folder=run.folder, workspace=ws, config=c, synthesize=run.stages.synthesize)
    run.step("synthesized")
    rows, counts, why = steps.chosen_rows(state, plan, workspace=ws, config=c)
    removed = removed_rows(read_jsonl(plan.dataset_dir(ws.datasets) / "train.jsonl"), plan.delta.gone)
    state = dataclasses.replace(state, examples={**counts, "removed": removed,
                                                 **({"why_from_scratch": why} if why else {})})
    warm = serving if rows is not None else None
    train = functools.partial(_train, run, state, cfg=steps.training_config(c.finetune, c.refresh, warm_start=warm))
    state = steps.trained(state, folder=run.folder, rows=rows, serving=serving, registry=run.registry, train=train)
    run.step("trained")
    state = steps.evaluated(state, folder=run.folder, workspace=ws, config=c, plan=plan, extra=run.extra,
                            conditions=run.conditions, settings=run.eval_settings, evaluate=run.stages.evaluate)
    run.step("evaluated")
    return _finish(run, state, serving=serving, ingested=ingested, ledger=ledger, plan=plan)


def _train(run: _Run, state: RefreshState, *, cfg, rows, warm_start, refresh):
    from framework.training.run import train_and_publish

    c = run.config
    return train_and_publish(dataset_dir=steps.dataset_folder(run.workspace, c, state.dataset_version),
                             base_model_dir=run.stages.base_model_dir(), base_model=c.generator.model, cfg=cfg,
                             precision=c.precision, registry=run.registry, workspace=run.workspace, resume="auto",
                             callbacks=run.callbacks, show_progress=run.show_progress, rows=rows,
                             warm_start=warm_start, refresh=refresh, device=resolve_device(c.runtime.device))


def _finish(run: _Run, state: RefreshState, *, serving: AdapterRef, ingested: dict, ledger: str,
            plan: RefreshPlan | None) -> RefreshReport:
    name = serving.name
    if not state.verdict["passed"]:
        return _report(run, state, plan, serving, ingested, outcome="gate_failed",
                       message=f"the gate rejected {name}@{state.candidate}; {name}@{state.serving} keeps serving. "
                               f"Inspect it with `ragtune adapters show {name}@{state.candidate}` and the evaluation "
                               "report; promote it by hand if the gate was wrong")
    now_serving = served_version(run.registry, run.config.router, name)
    if now_serving not in (state.serving, state.candidate):
        raise AdapterError(f"{name}@{now_serving} was promoted while this refresh ran from {state.serving}; "
                           f"{name}@{state.candidate} is not promoted. Run the refresh again to start from "
                           f"{now_serving}")
    if now_serving != state.candidate:
        run.registry.promote(name, state.candidate)
    run.step("promoted")
    report = _report(run, state, plan, serving, ingested, outcome="promoted",
                     message=f"{name}@{state.candidate} passed the gate and serves from the next question "
                             f"(it replaced {state.serving})")
    clear_state(run.folder)
    save_last(run.folder, {"outcome": "promoted", "at": _now(), "ledger": ledger, "serving": state.candidate,
                           "settings": run.settings, "report": report.report})
    return report


def _report(run: _Run, state: RefreshState, plan: RefreshPlan | None, serving: AdapterRef, ingested: dict, *,
            outcome: str, message: str, resumed: bool = False) -> RefreshReport:
    manifest = run.registry.get(serving.name, state.candidate).manifest if state.candidate else None
    metrics = dict(manifest.metrics) if manifest else {}
    training = {k: metrics.get(k) for k in ("train_seconds", "steps", "epochs", "train_examples", "train_loss",
                                            "eval_loss", "resumed_from_step")}
    report = RefreshReport(
        outcome=outcome, adapter=serving.name, message=message, id=state.id, serving_before=state.serving,
        serving_after=state.candidate if outcome == "promoted" else state.serving, candidate=state.candidate,
        resumed=resumed or state.runs > 1, ingest=ingested, plan=plan.to_dict() if plan else {},
        examples={**state.examples, "dataset_version": state.dataset_version},
        training={**training, "warm_start": (manifest.refresh.get("warm_start") if manifest else None)},
        evaluation=steps.verdict_summary(state.verdict or {}),
        gate={k: (state.verdict or {}).get(k) for k in ("passed", "checks")},
        seconds={**state.seconds, "total": round(sum(state.seconds.values()), 2)})
    return write_report(run.workspace.reports / f"refresh-{state.id}", report)


def _nothing(run: _Run, serving: AdapterRef, ingested: dict, message: str) -> RefreshReport:
    return RefreshReport(outcome="nothing_to_do", adapter=serving.name, message=message,
                         serving_before=serving.version, serving_after=serving.version, ingest=ingested)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
