"""What an adapter's manifest.json says: lineage, audience, settings, metrics, timings.

Everything needed to know what an adapter learned and to reproduce it: the base model
and its weights' fingerprint, the dataset's hash and version, every document's content
hash and readers at training time, the audience, the whole `finetune` section, the
metrics and the software versions.

Example:
    >>> m = build_manifest(card=card, cfg=cfg.finetune, base_model="bundled", ...)  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from framework.staleness import current_versions


def build_manifest(*, card: dict, cfg, base_model: str, base_fingerprint: str, precision: str, base_dtype: str,
                   metrics: dict, started: datetime, ledger: Path) -> dict:
    now = datetime.now(timezone.utc)
    return {
        "base_model": base_model,
        "base_fingerprint": base_fingerprint,
        "dataset": {"name": card["name"], "hash": card["hash"], "created_at": card.get("created_at"),
                    "generator": card.get("generator"), "examples": card["split"]},
        "documents": card["documents"],
        "document_acl": _document_acl(ledger, card["documents"]),
        "audience": card["audience"],
        "hyperparameters": cfg.model_dump(),
        "precision": precision,
        "base_weights_dtype": base_dtype,
        "metrics": metrics,
        "timings": {"started_at": started.isoformat(timespec="seconds"), "load_seconds": metrics["load_seconds"],
                    "train_seconds": metrics["train_seconds"],
                    "total_seconds": round((now - started).total_seconds(), 1)},
        "software": software_versions(),
        "created_at": now.isoformat(timespec="seconds"),
    }


def _document_acl(ledger: Path, documents: dict) -> dict:
    """Who could read each trained document (per the ingest ledger) when the adapter was trained."""
    current = current_versions(ledger) or {}
    return {d: current[d][1] for d in documents if d in current}


def software_versions() -> dict:
    import framework

    return {"ragtune": framework.__version__, **{pkg: version(pkg) for pkg in ("torch", "transformers", "peft")}}
