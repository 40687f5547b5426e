"""The promotion gate of `ragtune finetune --promote`: never serve a combination worse than retrieval.

A new adapter version is promoted only when `finetune.gate` holds on the dataset's eval
split, evaluated with that version pinned: by default `combined.token_f1.delta.high >= 0`,
i.e. `combined` is not worse than `rag` beyond the noise (the paired 95% interval of the
difference reaches 0). A version that fails stays published but unpromoted, and its
manifest records the verdict and why; an empty `finetune.gate` promotes without checking.

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

from framework.adapters.registry import AdapterRef, AdapterRegistry
from framework.evaluation.run import evaluate, pinned
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
        return _record(ref, {"promoted": False, "reason": "no eval split to check finetune.gate on; set "
                             "dataset.eval_fraction > 0 and run `ragtune synth`, or promote by hand"})
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


def _record(ref: AdapterRef, verdict: dict) -> dict:
    """Write the verdict into the version's manifest.json (atomically: a reader sees the old or the new file)."""
    manifest = dataclasses.replace(ref.manifest, promotion=verdict)
    path = ref.path / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False))
    tmp.replace(path)
    return verdict
