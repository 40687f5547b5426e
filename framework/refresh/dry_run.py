"""`ragtune refresh --dry-run`: the plan and the estimated training time, doing none of it.

Nothing is ingested, generated, trained or promoted. The sources are scanned and hashed (not
parsed) for documents the next ingest would add, change or delete, and the index as it is now
is compared with what the serving version learned (framework.refresh.plan). The examples are
counted with the run's own rule (framework.refresh.examples.example_counts): the unchanged ones
are the serving version's training rows of chunks that stay, exactly what the run finds learned;
the new ones are estimated from that dataset's examples per chunk for the new and changed chunks
(its chunks per document for documents not ingested yet), since they are not generated yet. The training time is measured as `ragtune finetune --dry-run` measures it (a few real
steps on this machine, framework.training.estimate) on that many of its examples; ingest,
synthesis of the new chunks and the evaluation come on top.

Example:
    >>> report = project.refresh(dry_run=True)        # doctest: +SKIP
    >>> report.estimate["training_seconds"]           # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Mapping

from framework.adapters.registry import AdapterRef
from framework.config import Config, FinetuneConfig
from framework.dataset.delta import key_document, row_key, version_keys
from framework.dataset.store import read_jsonl
from framework.refresh.examples import example_counts
from framework.refresh.plan import RefreshPlan
from framework.refresh.report import RefreshReport
from framework.refresh.steps import training_config


def _examples(plan: RefreshPlan, pending: Mapping[str, list], *, datasets: Path, replay: float) -> dict:
    """Estimated new, replayed and unchanged examples, and the old rows to stand in for them."""
    folder = plan.dataset_dir(datasets)
    old, keys = read_jsonl(folder / "train.jsonl"), version_keys(folder) or set()
    per_chunk = sum(bool(row_key(r)) for r in old) / max(1, len(keys))
    chunks_per_doc = len(keys) / max(1, len({key_document(k) for k in keys}))
    arriving = (len(pending["new"]) + len(pending["changed"])) * chunks_per_doc
    leaving = set(pending["changed"]) | set(pending["deleted"])
    unchanged = [r for r in old if row_key(r) not in plan.delta.gone and r.get("doc_id") not in leaving]
    new = round((len(plan.delta.new) + arriving) * per_chunk)
    return {**example_counts(new, len(unchanged), replay=replay, warm_start=plan.warm_start and new > 0), "rows": old}


def _seconds(tokens_per_row: float, rows: int, cfg: FinetuneConfig, tokens_per_second: float) -> float | None:
    """Training seconds of `rows` examples under `cfg` (epochs, or max_steps when set)."""
    if not tokens_per_second:
        return None
    epochs = cfg.epochs if cfg.max_steps <= 0 else \
        cfg.max_steps / math.ceil(rows / (cfg.batch_size * cfg.gradient_accumulation))
    return tokens_per_row * rows * epochs / tokens_per_second


def estimate(plan: RefreshPlan, pending: Mapping[str, list], *, serving: AdapterRef, config: Config,
             datasets: Path, base_model_dir: Callable[[], Path]) -> dict:
    """The examples and the measured training time of the refresh `plan` describes, and of a training from
    scratch on the whole set for comparison."""
    import torch

    from framework.runtime.precision import resolve_dtype
    from framework.training.estimate import estimate_training

    counts = _examples(plan, pending, datasets=datasets, replay=config.refresh.replay)
    old, n = counts.pop("rows"), counts["trained"]
    if not old or not n:
        return {**counts, "note": "no time estimate: the serving version's dataset version is gone"}
    cfg = training_config(config.finetune, config.refresh, warm_start=serving if plan.warm_start else None)
    est = estimate_training(rows=[old[i % len(old)] for i in range(n)], model_dir=base_model_dir(), cfg=cfg,
                            bf16=resolve_dtype(config.precision) == torch.bfloat16)
    scratch = _seconds(est.tokens_per_epoch / n, counts["new"] + counts["unchanged"], config.finetune,
                       est.tokens_per_second)
    return {**counts, "epochs": est.epochs, "steps": est.steps, "tokens": est.tokens,
            "tokens_per_second": est.tokens_per_second, "training_seconds": est.seconds,
            "training_duration": est.duration,
            "from_scratch_training_seconds": round(scratch, 1) if scratch is not None else None}


def plan_report(plan: RefreshPlan, pending: Mapping[str, list], *, serving: AdapterRef, config: Config,
                datasets: Path, base_model_dir: Callable[[], Path]) -> RefreshReport:
    """What `refresh()` would do now; nothing_to_do when neither the sources nor the index hold a change."""
    name = serving.name
    plan_dict = {**plan.to_dict(), "not_ingested_yet": {k: list(v) for k, v in pending.items()}}
    if plan.empty and not any(pending.values()):
        return RefreshReport(outcome="nothing_to_do", adapter=name, serving_before=serving.version,
                             serving_after=serving.version, plan=plan_dict,
                             message=f"nothing to do: {name}@{serving.version} learned every current chunk and no "
                                     "source changed")
    est = estimate(plan, pending, serving=serving, config=config, datasets=datasets, base_model_dir=base_model_dir)
    how = "warm-started from" if plan.warm_start else f"from scratch ({plan.why_from_scratch}), replacing"
    took = f"about {est['training_duration']} of training" if "training_duration" in est else est.get("note", "")
    message = (f"dry run: would train {name} {how} {serving.version} on about {est['trained']} examples (about "
               f"{est['new']} new or changed, estimated before synthesis; {est['replay']} replayed): {took}, plus "
               "ingest, synthesis of the changed chunks and the evaluation; nothing was changed")
    return RefreshReport(outcome="planned", adapter=name, message=message, serving_before=serving.version,
                         serving_after=serving.version, plan=plan_dict, estimate=est)
