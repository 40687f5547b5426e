"""The lexical (BM25) index beside Chroma, and rank fusion of the two result lists.

Dense retrieval with a small embedder misses exact names, codes and numbers that BM25
matches directly; fusing both rankings (reciprocal rank fusion) recovers them. The
BM25 index is rebuilt from the Chroma collection whenever the chunk ids or their
ACLs differ from the ones it was built on, so it has the same chunks, the same
deletes and the same ACLs as the vector index, even after a killed ingest. ACLs are applied
inside the BM25 search (a weight mask), so a principal always gets k readable chunks.

Example:
    >>> lex = LexicalIndex.build(ids=["a", "b"], texts=["leave days", "meal limit"],
    ...                          acls=[["public"], ["hr"]])
    >>> [chunk_id for chunk_id, _ in lex.search("meal limit", groups=("hr",), k=1)]
    ['b']
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np


def chunks_fingerprint(ids: Sequence[str], acls: Sequence[Sequence[str]]) -> str:
    """Changes when a chunk is added, deleted, or its ACL changes."""
    rows = sorted(f"{i}\t{','.join(sorted(a))}" for i, a in zip(ids, acls))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def _tokenize(texts: list[str]):
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", show_progress=False)


class LexicalIndex:
    def __init__(self, bm25, ids: list[str], acls: list[list[str]]) -> None:
        self.bm25 = bm25
        self.ids = ids
        self.acls = acls
        self.fingerprint = chunks_fingerprint(ids, acls)

    @classmethod
    def build(cls, *, ids: list[str], texts: list[str], acls: list[list[str]]) -> "LexicalIndex":
        import bm25s

        bm25 = bm25s.BM25()
        if ids:
            bm25.index(_tokenize(texts), show_progress=False)
        return cls(bm25, list(ids), [list(a) for a in acls])

    def save(self, folder: Path) -> None:
        """Write atomically: a reader never sees half an index."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".lexical-", dir=folder.parent))
        if self.ids:
            self.bm25.save(str(tmp), show_progress=False)
        (tmp / "chunks.json").write_text(json.dumps({"ids": self.ids, "acls": self.acls}))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            tmp.rename(folder)
        except OSError:  # another process saved the same index first; theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex | None":
        import bm25s

        meta = folder / "chunks.json"
        if not meta.is_file():
            return None
        data = json.loads(meta.read_text())
        bm25 = bm25s.BM25.load(str(folder), show_progress=False) if data["ids"] else bm25s.BM25()
        return cls(bm25, data["ids"], data["acls"])

    def search(self, query: str, *, groups: Sequence[str], k: int) -> list[tuple[str, float]]:
        """Top-k (chunk id, BM25 score) among chunks readable by any of `groups`."""
        allowed = set(groups)
        mask = np.array([1.0 if allowed.intersection(a) else 0.0 for a in self.acls], dtype=np.float32)
        n = int(mask.sum())
        if n == 0:
            return []
        tokens = _tokenize([query])
        if not tokens.vocab or not any(tokens.ids):
            return []
        docs, scores = self.bm25.retrieve(tokens, k=min(k, n), weight_mask=mask, show_progress=False, n_threads=1)
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]


def rrf(rankings: Sequence[Sequence[str]], weights: Sequence[float], *, k: int = 60) -> list[str]:
    """Reciprocal rank fusion: sum of weight / (k + rank) over the lists an id appears in."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores, key=lambda i: (-scores[i], i))
