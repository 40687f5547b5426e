"""The refresh plan: what the serving adapter has not learned yet, and how the next version learns it.

The serving version's manifest names the dataset version it trained on; that version's
generation cache lists the chunks it was generated from (framework.dataset.delta). The
index's chunks, as synthesis would see them, against that list give the new and changed
chunks and the gone ones: nothing on either side, nothing to do. Staleness (manifest
against ledger) names the documents behind them for the report.

A warm start continues the serving adapter; it is refused, and the version trains from
scratch on the whole set, where continuing would keep what must go: the readers of a
learned document changed (weights cannot unlearn, so an audience could keep text it may no
longer read), the audience itself changed, or the changes are deletions only. The dataset
settings changing since (generation fingerprint) regenerates every chunk, so every example
is new and the version trains from scratch as well.

Example:
    >>> plan = RefreshPlan(adapter="support", serving="v0003", dataset="support/v0007")
    >>> plan.empty
    True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping, Sequence

from framework.adapters.registry import AdapterRef
from framework.adapters.staleness import staleness_since_training
from framework.config import DatasetConfig
from framework.dataset.card import DatasetCard
from framework.dataset.delta import ChunkDelta, chunk_delta, current_keys, key_document, version_keys
from framework.dataset.pipeline import generation_fingerprint
from framework.dataset.store import resolve_dataset_dir
from framework.records import Chunk

Basis = Literal["chunks", "documents", "settings"]


@dataclass(frozen=True)
class RefreshPlan:
    """What changed for the serving version `serving` of `adapter`, and whether to warm-start from it."""

    adapter: str
    serving: str
    dataset: str  # name/version the serving version trained on
    basis: Basis = "chunks"  # how changes were found: chunk keys, whole documents (no cache), settings changed
    delta: ChunkDelta = ChunkDelta()
    documents: Mapping[str, Sequence[str]] = field(default_factory=dict)  # new, changed, acl_changed, deleted
    warm_start: bool = True
    why_from_scratch: str = ""
    fingerprint: str = ""

    @property
    def empty(self) -> bool:
        return self.delta.empty

    def dataset_dir(self, datasets_root: Path) -> Path:
        """The folder of the dataset version the serving version trained on (it may be gone)."""
        name, _, version = self.dataset.partition("/")
        return resolve_dataset_dir(datasets_root, name, version or None)

    def to_dict(self) -> dict:
        return {"adapter": self.adapter, "serving": self.serving, "dataset": self.dataset, "basis": self.basis,
                "chunks": {"new_or_changed": len(self.delta.new), "gone": len(self.delta.gone)},
                "documents": {k: list(v) for k, v in self.documents.items()}, "warm_start": self.warm_start,
                "why_from_scratch": self.why_from_scratch, "fingerprint": self.fingerprint}


def _reference(serving: AdapterRef, chunks: Sequence[Chunk], cfg: DatasetConfig, generator_model: str,
               datasets_root: Path) -> tuple[set[str], Basis]:
    """The chunk keys the serving version learned from, and how they were found."""
    d = serving.manifest.dataset
    folder = resolve_dataset_dir(datasets_root, d.get("name") or cfg.name, d.get("version") or None)
    if (folder / "card.json").is_file() and \
            DatasetCard.load(folder).generation_fingerprint != generation_fingerprint(cfg, generator_model):
        return set(), "settings"
    keys = version_keys(folder)
    if keys is not None:
        return keys, "chunks"
    # The version folder is gone: every chunk of a document whose learned hash still holds counts as known.
    learned = serving.manifest.documents
    known = {c.id for c in chunks if learned.get(c.doc_id) == c.doc_hash}
    current = {c.doc_id for c in chunks}
    return current_keys([c for c in chunks if c.id in known], cfg) | \
        {f"{doc}\n" for doc in learned if doc not in current}, "documents"


def _warm_start(enabled: bool, basis: Basis, has_new: bool, stale: Mapping, serving: AdapterRef,
                cfg: DatasetConfig) -> tuple[bool, str]:
    if not enabled:
        return False, "refresh.warm_start is false"
    if basis == "settings":
        return False, "the dataset settings changed since the serving version's dataset: every example is new"
    if tuple(serving.manifest.audience) != tuple(cfg.audience):
        return False, (f"dataset.audience {list(cfg.audience)} differs from the serving version's "
                       f"{list(serving.manifest.audience)}")
    if stale.get("acl_changed"):
        return False, (f"the readers of {len(stale['acl_changed'])} learned document(s) changed; weights cannot "
                       "unlearn, so the new version must not start from the old one")
    if not has_new:
        return False, "the changes are deletions only, which a warm start cannot forget"
    return True, ""


def make_plan(*, chunks: Sequence[Chunk], cfg: DatasetConfig, serving: AdapterRef, generator_model: str,
              datasets_root: Path, ledger: Path, warm_start: bool, settings: str,
              pending_new: bool = False) -> RefreshPlan:
    """Compare the index's chunks with what `serving` learned; `settings` fingerprints the configuration
    the run trains with, so a plan changes when either the documents or the settings do.
    `pending_new`: documents not ingested yet will bring new chunks (a dry run plans before ingest)."""
    reference, basis = _reference(serving, chunks, cfg, generator_model, datasets_root)
    delta = chunk_delta(current_keys(chunks, cfg), reference)
    m = serving.manifest
    stale = staleness_since_training(m.documents, m.document_acl, ledger) or {}
    new_docs = sorted({key_document(k) for k in delta.new} - set(m.documents))
    documents = {"new": new_docs, **{k: list(stale.get(k, [])) for k in ("changed", "acl_changed", "deleted")}}
    warm, why = (warm_start, "") if delta.empty and not pending_new else \
        _warm_start(warm_start, basis, bool(delta.new) or pending_new, stale, serving, cfg)
    digest = hashlib.sha256(json.dumps([serving.key, sorted(delta.new), sorted(delta.gone), settings, warm])
                            .encode()).hexdigest()[:16]
    return RefreshPlan(adapter=serving.name, serving=serving.version,
                       dataset=f"{m.dataset.get('name') or cfg.name}/{m.dataset.get('version') or ''}", basis=basis,
                       delta=delta, documents=documents, warm_start=warm, why_from_scratch=why, fingerprint=digest)
