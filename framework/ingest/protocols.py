"""What ingest writes through, as protocols, so the ingest stage imports no later stage.

Ingest embeds chunks and writes them to a store; retrieval later reads that store. The
real implementations (framework.retrieval.embedder, framework.retrieval.index) live with
retrieval; the composition root (framework/project.py) passes them in, and a test can
pass its own.

Example:
    >>> from framework.retrieval.embedder import HashingEmbedder
    >>> isinstance(HashingEmbedder(), Embedder)
    True
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from framework.records import Chunk


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors; `tokenize` lets chunks fit `max_tokens`."""

    name: str
    max_tokens: int

    def embed(self, texts: list[str]) -> np.ndarray: ...

    def tokenize(self, text: str) -> list: ...


@runtime_checkable
class ChunkStore(Protocol):
    """Where ingest writes chunks: upsert by id with their vectors, delete stale ids, and give kept chunks
    (a document that failed to read) the ACL the config gives their document now."""

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def set_acl(self, ids: Sequence[str], acl: Sequence[str]) -> None: ...
