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
import logging
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from framework.records import is_group


def chunks_fingerprint(ids: Sequence[str], acls: Sequence[Sequence[str]]) -> str:
    """Changes when a chunk is added, deleted, or its ACL changes."""
    rows = sorted(f"{i}\t{','.join(sorted(a))}" for i, a in zip(ids, acls))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


# Saved with the index: an index built with another tokenizer is rebuilt, never misread.
TOKENIZER = "bm25s-en-stopwords-snowball-english"


@lru_cache(maxsize=1)
def _bm25s():
    """bm25s, imported once. It sets its own logger to DEBUG on import, which printed its internal
    "Building index from IDs objects" under every command that rebuilds the index; its records follow
    the application's logging level instead."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def _tokenize(texts: list[str], *, return_ids: bool = True):
    """Stopwords out, Snowball stems in: 'benefits' finds 'benefit', 'covered' finds 'cover'."""
    return _bm25s().tokenize(texts, stopwords="en", stemmer=_stemmer(), return_ids=return_ids, show_progress=False)


def correct_typos(tokens: list[str], vocabulary: Sequence[str], *, min_length: int = 4,
                  min_similarity: float = 80.0) -> list[str]:
    """Replace query tokens the corpus never uses by the closest word it does ('helth' -> 'health').

    Real users misspell; BM25 only matches exact tokens. Only unknown tokens of at least
    `min_length` characters change, and only to a word at least `min_similarity` percent
    similar (rapidfuzz's normalized Indel similarity).

    Example:
        >>> correct_typos(["gendr", "care", "zq"], ["gender", "care"])
        ['gender', 'care', 'zq']
    """
    from rapidfuzz import fuzz, process

    known = set(vocabulary)
    out = []
    for token in tokens:
        if token in known or len(token) < min_length:
            out.append(token)
            continue
        match = process.extractOne(token, vocabulary, scorer=fuzz.ratio, score_cutoff=min_similarity)
        out.append(match[0] if match else token)
    return out


class LexicalIndex:
    def __init__(self, bm25, ids: list[str], acls: list[list[str]]) -> None:
        self.bm25 = bm25
        self.ids = ids
        self.acls = acls
        self.fingerprint = chunks_fingerprint(ids, acls)
        self._vocabulary = sorted(t for t in getattr(bm25, "vocab_dict", {}) or {} if t)
        self._masks: dict[tuple[str, ...], np.ndarray] = {}

    @classmethod
    def build(cls, *, ids: list[str], texts: list[str], acls: list[list[str]]) -> "LexicalIndex":
        bm25 = _bm25s().BM25()
        if ids:
            bm25.index(_tokenize(texts), show_progress=False)
        return cls(bm25, list(ids), [list(a) for a in acls])

    def save(self, folder: Path) -> None:
        """Write atomically: a reader never sees half an index."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".lexical-", dir=folder.parent))
        if self.ids:
            self.bm25.save(str(tmp), show_progress=False)
        (tmp / "chunks.json").write_text(json.dumps({"ids": self.ids, "acls": self.acls, "tokenizer": TOKENIZER}))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            tmp.rename(folder)
        except OSError:  # another process saved the same index first; theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex | None":
        bm25s = _bm25s()
        meta = folder / "chunks.json"
        if not meta.is_file():
            return None
        data = json.loads(meta.read_text())
        if data.get("tokenizer") != TOKENIZER:
            return None  # built by an older ragtune: rebuilt by the caller
        bm25 = bm25s.BM25.load(str(folder), show_progress=False) if data["ids"] else bm25s.BM25()
        return cls(bm25, data["ids"], data["acls"])

    def _mask(self, groups: tuple[str, ...]) -> np.ndarray:
        """1 for chunks the groups may read; computed once per set of groups (an index never changes).

        Only valid group names match, so a chunk with an empty ACL (or an old index's `__nobody__`
        sentinel) is never readable, whatever a caller passes."""
        cache = self._masks
        if groups not in cache:
            allowed = {g for g in groups if is_group(g)}
            if len(cache) > 256:
                cache.clear()
            cache[groups] = np.array([1.0 if allowed.intersection(a) else 0.0 for a in self.acls], dtype=np.float32)
        return cache[groups]

    def search(self, query: str, *, groups: Sequence[str], k: int, typo_tolerant: bool = True) -> list[tuple[str, float]]:
        """Top-k (chunk id, BM25 score) among chunks readable by any of `groups`.

        With `typo_tolerant`, query words the corpus never uses are first corrected to
        the closest corpus word (see `correct_typos`)."""
        mask = self._mask(tuple(sorted(set(groups))))
        n = int(mask.sum())
        if n == 0:
            return []
        tokens = _tokenize([query], return_ids=False)[0]
        if typo_tolerant:
            tokens = correct_typos(tokens, self._vocabulary)
        tokens = [t for t in tokens if t in self.bm25.vocab_dict]
        if not tokens:
            return []
        docs, scores = self.bm25.retrieve([tokens], k=min(k, n), weight_mask=mask, show_progress=False, n_threads=1)
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]


def rrf(rankings: Sequence[Sequence[str]], weights: Sequence[float], *, k: int = 60) -> list[str]:
    """Reciprocal rank fusion: sum of weight / (k + rank) over the lists an id appears in."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores, key=lambda i: (-scores[i], i))
