"""What changed for the finetuning set between a dataset version and the index, chunk by chunk.

Synthesis caches its pairs per chunk under a key: the document id and the hash of the
chunk's text as generators saw it (redacted, and only for chunks the audience may read).
The same key on both sides tells exactly which chunks a dataset version has not seen
(new or changed text) and which it holds that are gone (changed or deleted text, or no
longer readable by the audience), and every training row carries its chunk's key, so a
refresh can train on the rows of new and changed chunks only and drop the gone ones.

Example:
    >>> from framework.records import Chunk
    >>> c = Chunk(id="c", doc_id="docs:a.md", position=0, text="hi", title="a", uri="", source="docs",
    ...           doc_hash="h", acl=("public",))
    >>> cache_key(c) == row_key({"doc_id": "docs:a.md", "chunk_hash": text_hash("hi")})
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from framework.config import DatasetConfig
from framework.dataset import store
from framework.dataset.filters import readable_by_audience
from framework.dataset.formatting import text_hash
from framework.dataset.redaction import Redactor
from framework.records import Chunk


def cache_key(chunk: Chunk) -> str:
    """The synthesis cache's key of a chunk (already redacted): document id and text hash."""
    return f"{chunk.doc_id}\n{text_hash(chunk.text)}"


def row_key(row: dict) -> str | None:
    """The key of the chunk a dataset row was generated from; None for imported rows (no chunk)."""
    if not row.get("doc_id") or not row.get("chunk_hash"):
        return None
    return f"{row['doc_id']}\n{row['chunk_hash']}"


def key_document(key: str) -> str:
    return key.partition("\n")[0]


def current_keys(chunks: Sequence[Chunk], cfg: DatasetConfig) -> set[str]:
    """The keys synthesis would use for these chunks: the audience's chunks, redacted as configured."""
    scrub = Redactor(cfg)
    return {cache_key(scrub.chunk(c)) for c in chunks if readable_by_audience(c.acl, cfg.audience)}


def version_keys(folder: Path) -> set[str] | None:
    """The chunk keys a dataset version was generated from (its generation cache); None without one."""
    path = Path(folder) / store.CACHE_FILE
    if not path.is_file():
        return None
    return {e["key"] for e in store.read_jsonl(path)}


@dataclass(frozen=True)
class ChunkDelta:
    """Chunks a dataset version lacks (`new`: new or changed text) and holds that are gone."""

    new: frozenset[str] = frozenset()
    gone: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not self.new and not self.gone

    def documents(self) -> dict[str, list[str]]:
        """Document ids with new chunks, and with gone chunks."""
        return {"with_new_chunks": sorted({key_document(k) for k in self.new}),
                "with_gone_chunks": sorted({key_document(k) for k in self.gone})}


def chunk_delta(current: set[str], reference: set[str]) -> ChunkDelta:
    return ChunkDelta(new=frozenset(current - reference), gone=frozenset(reference - current))
