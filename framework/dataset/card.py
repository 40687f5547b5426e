"""A dataset version's card: what was generated, dropped, kept and split, from which documents.

`card.json` is written beside `train.jsonl` and `eval.jsonl`; training reads its hash,
documents and audience into the adapter's manifest, so every adapter knows what it
learned from. `DatasetCard` is the typed record the stages hand each other; the file
keeps its JSON format (`to_dict` / `from_dict` round-trip, cards of older versions load).

Example:
    >>> card = DatasetCard.from_dict({"name": "default", "version": "v0001", "hash": "ab", "kept": 3})
    >>> card.version, card.kept, card.to_dict()["name"]
    ('v0001', 3, 'default')
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from framework.config import DatasetConfig
from framework.records import record_from_dict, record_to_dict


@dataclass(frozen=True)
class DatasetCard:
    name: str
    version: str = ""
    hash: str = ""
    created_at: str | None = None
    generator: str = ""
    audience: tuple[str, ...] = ()
    chunks: Mapping[str, int] = field(default_factory=dict)
    generated: int = 0
    generated_by_generator: Mapping[str, int] = field(default_factory=dict)
    dropped: Mapping[str, int] = field(default_factory=dict)
    kept: int = 0
    kept_by_generator: Mapping[str, int] = field(default_factory=dict)
    split: Mapping[str, Any] = field(default_factory=dict)
    documents: Mapping[str, str] = field(default_factory=dict)  # doc id -> content hash of every document used
    generation_fingerprint: str = ""
    search_fingerprint: str = ""
    incremental: Mapping[str, Any] = field(default_factory=dict)
    teacher: Mapping[str, Any] = field(default_factory=dict)
    round_trip: Mapping[str, Any] = field(default_factory=dict)
    pii: Mapping[str, Any] = field(default_factory=dict)
    heldout_documents: tuple[str, ...] = ()
    seconds: Mapping[str, float] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys a newer ragtune wrote, kept on rewrite

    def to_dict(self) -> dict:
        return record_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DatasetCard":
        return record_from_dict(cls, data)

    @classmethod
    def load(cls, folder: Path) -> "DatasetCard":
        """The card of a dataset version folder; a clear error when there is none."""
        path = Path(folder) / "card.json"
        if not path.is_file():
            raise FileNotFoundError(f"no dataset at {folder}; run `ragtune synth` first")
        return cls.from_dict(json.loads(path.read_text()))


def rows_by_kind(rows: list[dict]) -> dict:
    """Rows per mode and kind: the fact kind and phrasing form ('number:fronted'), 'entity:profile', 'raw_text'.

    Example:
        >>> rows_by_kind([{"mode": "finetuned", "generator": "extractive:number:echo"}])
        {'finetuned': {'number:echo': 1}}
    """
    out: dict[str, Counter] = {}
    for r in rows:
        kind = r["generator"].split(":", 1)[1] if ":" in r["generator"] else r["generator"]
        out.setdefault(r["mode"], Counter())[kind] += 1
    return {mode: dict(sorted(c.items())) for mode, c in sorted(out.items())}


def build_card(cfg: DatasetConfig, *, chunks: int, eligible: int, generated: Counter, dropped: Counter, kept: list,
               train: list[dict], evals: list[dict], extra: dict) -> dict:
    """What card.json says: counts per generator, filter, split and mode, the documents used, the config."""
    return {
        "name": cfg.name,
        "generator": cfg.generator,
        "audience": list(cfg.audience),
        "chunks": {"total": chunks, "eligible": eligible},
        "generated": sum(generated.values()),
        "generated_by_generator": dict(sorted(generated.items())),
        "dropped": dict(dropped),
        "kept": len(kept),
        "kept_by_generator": dict(sorted(Counter(r["generator"] for r in train + evals
                                                 if r["mode"] == "finetuned").items())),
        "split": {"train": len(train), "eval": len(evals),
                  "train_by_mode": {m: sum(r["mode"] == m for r in train) for m in ("finetuned", "combined")},
                  "eval_by_kind": dict(sorted(Counter(r.get("split_kind", "") for r in evals).items())),
                  "train_by_kind": rows_by_kind(train)},
        "documents": dict(sorted({(r["doc_id"], r["doc_hash"]) for r in train + evals if r["doc_id"]})),
        **extra,
        "config": cfg.model_dump(by_alias=True),
    }
