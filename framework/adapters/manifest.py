"""What an adapter's manifest.json says: lineage, audience, settings, metrics, timings.

Everything needed to know what an adapter learned and to reproduce it: the base model
and its weights' fingerprint, the dataset's hash and version, every document's content
hash and readers at training time, the audience, the whole `finetune` section, the
metrics and the software versions. `AdapterManifest` is the typed record; the file keeps
its JSON format (manifests written by earlier versions load, unknown keys are kept).

Example:
    >>> m = AdapterManifest.from_dict({"name": "support", "version": "v0002", "audience": ["hr"]})
    >>> m.key, m.audience
    ('support-v0002', ('hr',))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any, Mapping

from framework.adapters.staleness import current_versions
from framework.config import FinetuneConfig
from framework.dataset.card import DatasetCard
from framework.records import record_from_dict, record_to_dict


@dataclass(frozen=True)
class AdapterManifest:
    name: str = ""
    version: str = ""
    base_model: str = ""
    base_fingerprint: str = ""
    dataset: Mapping[str, Any] = field(default_factory=dict)  # name, version, hash, created_at, generator, examples
    documents: Mapping[str, str] = field(default_factory=dict)  # doc id -> content hash learned
    document_acl: Mapping[str, str] = field(default_factory=dict)  # doc id -> readers at training time
    audience: tuple[str, ...] = ()  # groups it may serve; empty: it learned public documents only
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    precision: str = ""
    base_weights_dtype: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    timings: Mapping[str, Any] = field(default_factory=dict)
    software: Mapping[str, str] = field(default_factory=dict)
    created_at: str = ""
    refresh: Mapping[str, Any] = field(default_factory=dict)  # set by `ragtune refresh`: warm start, examples, run id
    # the held-out knowledge check (framework.training.knowledge): base, per epoch, the epoch kept, per document
    knowledge: Mapping[str, Any] = field(default_factory=dict)
    promotion: Mapping[str, Any] = field(default_factory=dict)  # the promotion gate's verdict, when one ran
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys a newer ragtune wrote, kept on rewrite

    def unknown_documents(self, doc_ids) -> list[str]:
        """Which of `doc_ids` this adapter does not know: not trained on, or trained but failed the knowledge
        check (a document the check did not probe counts as known). A manifest that lists no trained document
        (an adapter made elsewhere, without lineage) says nothing either way: none is reported."""
        checked = self.knowledge.get("documents") or {}
        return [d for d in dict.fromkeys(doc_ids) if checked.get(d, {}).get("known") is False or
                (self.documents and d not in self.documents)]

    @property
    def key(self) -> str:
        """How the generator names this adapter version in memory."""
        return f"{self.name}-{self.version}"

    def to_dict(self) -> dict:
        return record_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AdapterManifest":
        return record_from_dict(cls, data)


def build_manifest(*, card: DatasetCard, cfg: FinetuneConfig, base_model: str, base_fingerprint: str,
                   precision: str, base_dtype: str, metrics: dict, started: datetime, ledger: Path,
                   warm_start: AdapterManifest | None = None, refresh: Mapping[str, Any] | None = None
                   ) -> AdapterManifest:
    """The manifest of a run that just trained on `card` (name and version are set when published).

    A run warm-started from another version still holds what that one learned: documents it
    learned that `card` no longer has (deleted since) stay listed with their old hashes, so
    staleness keeps reporting them until a training from scratch."""
    now = datetime.now(timezone.utc)
    inherited = {d: h for d, h in (warm_start.documents if warm_start else {}).items() if d not in card.documents}
    documents = dict(sorted({**inherited, **card.documents}.items()))
    lineage = {**(refresh or {}), "warm_start": warm_start.key, "inherited_documents": sorted(inherited)} \
        if warm_start else dict(refresh or {})
    return AdapterManifest(
        base_model=base_model,
        base_fingerprint=base_fingerprint,
        dataset={"name": card.name, "version": card.version, "hash": card.hash, "created_at": card.created_at,
                 "generator": card.generator, "examples": dict(card.split)},
        documents=documents,
        document_acl=_document_acl(ledger, documents),
        audience=tuple(card.audience),
        hyperparameters=cfg.model_dump(),
        precision=precision,
        base_weights_dtype=base_dtype,
        metrics={k: v for k, v in metrics.items() if k != "knowledge"},
        knowledge=metrics.get("knowledge") or {},
        timings={"started_at": started.isoformat(timespec="seconds"), "load_seconds": metrics["load_seconds"],
                 "train_seconds": metrics["train_seconds"],
                 "total_seconds": round((now - started).total_seconds(), 1)},
        software=software_versions(),
        created_at=now.isoformat(timespec="seconds"),
        refresh=lineage,
    )


def _document_acl(ledger: Path, documents: Mapping[str, str]) -> dict:
    """Who could read each trained document (per the ingest ledger) when the adapter was trained."""
    current = current_versions(ledger) or {}
    return {d: current[d][1] for d in documents if d in current}


def software_versions() -> dict:
    from framework import __version__

    return {"ragtune": __version__, **{pkg: version(pkg) for pkg in ("torch", "transformers", "peft")}}
