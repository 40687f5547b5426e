"""The promotion gate of `ragtune finetune --promote`: never serve a combination worse than retrieval.

A new adapter version is promoted only when `finetune.gate` holds on the dataset's eval
split, evaluated with that version pinned: by default `combined.token_f1.delta.high >= 0`,
i.e. `combined` is not worse than `rag` beyond the noise (the paired 95% interval of the
difference reaches 0). A version that fails stays published but unpromoted, and its
manifest records the verdict and why. An empty `finetune.gate` promotes without checking, and
so does a dataset without an eval split (with a warning, and the manifest says so).
`ragtune refresh` adds the same conditions, on its evaluation questions with the candidate
pinned, to its own gate (`combined_gate`).

Example:
    >>> verdict = promote_if_gate_passes(router=router, registry=registry, ref=ref, rows=eval_rows,  # doctest: +SKIP
    ...                                  conditions=cfg.finetune.gate, embedder=embedder)
    >>> verdict["promoted"], verdict["reason"]                                                      # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Sequence

from framework.adapters.manifest import AdapterManifest
from framework.adapters.registry import AdapterRef, AdapterRegistry
from framework.evaluation.gate import check_gates, parse_conditions
from framework.evaluation.results import EvaluationResult, GateResult
from framework.evaluation.run import evaluate, pinned, question_rows
from framework.records import Principal

log = logging.getLogger(__name__)


def promote_if_gate_passes(*, router, registry: AdapterRegistry, ref: AdapterRef, rows: Sequence[dict],
                           conditions: Sequence[str], embedder=None, principal: Principal = Principal(),
                           report=None) -> dict:
    """Evaluate rag and combined (this version) on `rows`, promote when every condition holds, and record
    the verdict in the version's manifest; returns the verdict."""
    if not conditions:
        registry.promote(ref.name, ref.version)
        return _record(ref, {"promoted": True, "reason": "finetune.gate is empty: promoted without a check"})
    if not rows:
        log.warning("finetune.gate not checked: the dataset has no eval split (dataset.eval_fraction: 0); promoting "
                    "%s@%s unchecked. Check it with `ragtune eval --modes rag,combined --gate ...` on your questions",
                    ref.name, ref.version)
        registry.promote(ref.name, ref.version)
        return _record(ref, {"promoted": True, "reason": "finetune.gate not checked: the dataset has no eval split"})
    spec = f"{ref.name}@{ref.version}"
    result = evaluate(pinned(router, spec, principal), rows, modes=("rag", "combined"), gates=conditions,
                      principal=principal, embedder=embedder, report=report, title=f"finetune --promote gate {spec}")
    gates = result.gates
    checks = [c.to_dict() for c in gates.checks]
    scores = {label: result.estimate(label, "token_f1").to_dict() for label in ("rag", "combined")}
    if gates.passed:
        registry.promote(ref.name, ref.version)
        return _record(ref, {"promoted": True, "reason": "finetune.gate passed", "checks": checks,
                             "token_f1": scores, "questions": result.questions})
    failed = "; ".join(f"{c.condition}: {c.reason}" for c in gates.failures)
    reason = (f"not promoted: finetune.gate failed on the eval split ({result.questions} questions): {failed}. "
              f"{spec} stays published; promote it by hand (`ragtune adapters promote {ref.name} {ref.version}`) "
              "if the gate was wrong")
    log.warning(reason)
    return _record(ref, {"promoted": False, "reason": reason, "checks": checks, "token_f1": scores,
                         "questions": result.questions})


def finetune_and_gate(project, *, resume: bool = False, callbacks: Sequence = (),
                      promote: bool = False) -> AdapterManifest | None:
    """`Project.finetune`: train and publish; with `promote`, promote only when `finetune.gate` passes."""
    from framework.training.run import train_and_publish

    gate = promote and bool(project.config.finetune.gate)
    manifest = train_and_publish(dataset_dir=project.dataset_dir(), base_model_dir=project.base_model_dir,
                                 base_model=project.config.generator.model, cfg=project.config.finetune,
                                 precision=project.config.precision, registry=project.adapters,
                                 workspace=project.workspace, resume=resume, callbacks=callbacks,
                                 show_progress=project.show_progress, promote=promote and not gate)
    return gate_new_version(project, manifest) if gate and manifest is not None else manifest


def combined_gate(evaluate, rows: Sequence[dict], *, spec: str, conditions: Sequence[str],
                  principal: Principal = Principal(), title: str = "promotion gate") -> GateResult:
    """`conditions` (rows `rag` and `combined`) checked with adapter `spec` pinned, through a `Project.evaluate`-like
    callable: what `ragtune refresh` adds to its own gate (candidate against serving) before it promotes."""
    if not conditions:
        return GateResult(checks=())
    parse_conditions(conditions, labels=("rag", "combined"))
    result = evaluate(rows, modes=["rag", "combined"], adapters=[spec], baseline="rag", principal=principal,
                      title=title)
    return check_gates(relabel(result, {f"combined@{spec}": "combined"}), conditions)


def relabel(result: EvaluationResult, names: dict) -> EvaluationResult:
    """The same evaluation with rows (and their paired differences) renamed."""
    rows = tuple(dataclasses.replace(r, label=names.get(r.label, r.label)) for r in result.results)
    pairs = tuple(dataclasses.replace(c, label=names.get(c.label, c.label), baseline=names.get(c.baseline, c.baseline))
                  for c in result.comparisons)
    return dataclasses.replace(result, results=rows, comparisons=pairs,
                               baseline=names.get(result.baseline, result.baseline), gates=None)


def gate_new_version(project, manifest: AdapterManifest) -> AdapterManifest:
    """The gate on the dataset's eval split (one row per question, the RAFT rows left out), then the version's
    manifest with the verdict recorded."""
    split = project.dataset_dir() / "eval.jsonl"
    rows = question_rows(None, eval_split=split) if split.is_file() and split.read_text().strip() else []
    rows = list({r["question"]: r for r in rows if r.get("mode") != "combined"}.values())
    ref = project.adapters.get(manifest.name, manifest.version)
    promote_if_gate_passes(router=project.router, registry=project.adapters, ref=ref, rows=rows,
                           conditions=project.config.finetune.gate, embedder=project.embedder,
                           report=project.workspace)
    return project.adapters.get(manifest.name, manifest.version).manifest


def _record(ref: AdapterRef, verdict: dict) -> dict:
    """Write the verdict into the version's manifest.json (atomically: a reader sees the old or the new file)."""
    manifest = dataclasses.replace(ref.manifest, promotion=verdict)
    path = ref.path / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False))
    tmp.replace(path)
    return verdict
