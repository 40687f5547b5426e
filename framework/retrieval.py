"""Retrieval: dense (Chroma), lexical (BM25) or both fused, always within the principal's ACL.

`index.retrieval: hybrid` (the default) takes `index.candidates` results from each
index, fuses the rankings by reciprocal rank fusion and keeps the top k. Every
returned chunk is scored by its cosine similarity to the question, whichever list
found it, so `auto` mode and callers read one scale. An optional reranker
(framework.rerank) reorders `index.rerank_candidates` first-stage results.

Example:
    >>> retriever = Retriever(index, embedder, lexical_dir, cfg.index)              # doctest: +SKIP
    >>> retriever.retrieve("meal limit", principal=Principal(groups=("finance",)))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path

from framework.chunking import embedding_text
from framework.embedder import Embedder
from framework.index import ChromaIndex
from framework.lexical import LexicalIndex, rrf
from framework.records import Principal, Source
from framework.rerank import Reranker

log = logging.getLogger(__name__)


def sync_lexical(index: ChromaIndex, folder: Path) -> LexicalIndex:
    """Load the BM25 index, rebuilding it when its chunks or ACLs differ from the vector index's."""
    current = LexicalIndex.load(folder)
    if current is not None and current.fingerprint == index.acl_fingerprint():
        return current
    rows = index.rows()
    log.info("rebuilding the lexical index over %d chunks", len(rows))
    lexical = LexicalIndex.build(ids=[r["id"] for r in rows],
                                 texts=[embedding_text(r.get("title", ""), r["text"], r.get("section", "")) for r in rows],
                                 acls=[list(r.get("acl") or []) for r in rows])
    lexical.save(folder)
    return lexical


class Retriever:
    def __init__(self, index: ChromaIndex, embedder: Embedder, lexical_dir: Path, cfg,
                 reranker: Reranker | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self.lexical_dir = lexical_dir
        self.cfg = cfg
        self.reranker = reranker
        self._lexical: LexicalIndex | None = None

    @property
    def lexical(self) -> LexicalIndex:
        if self._lexical is None:
            self._lexical = sync_lexical(self.index, self.lexical_dir)
        return self._lexical

    def refresh(self) -> None:
        """Call after an ingest: the next search re-syncs the lexical index."""
        self._lexical = None

    def retrieve(self, question: str, *, principal: Principal, k: int | None = None) -> list[Source]:
        if principal is None:
            raise PermissionError("retrieval needs a Principal; ACL filtering is never skipped")
        k = k or self.cfg.top_k
        if self.reranker is None:
            return self._first_stage(question, principal, k)
        candidates = self._first_stage(question, principal, max(k, self.cfg.rerank_candidates))
        return self.reranker.rerank(question, candidates)[:k]

    def _first_stage(self, question: str, principal: Principal, k: int) -> list[Source]:
        vector = self.embedder.embed([question])[0]
        if self.cfg.retrieval == "dense":
            return self.index.search(vector, principal=principal, k=k)
        depth = max(k, self.cfg.candidates)
        lexical = [i for i, _ in self.lexical.search(question, groups=principal.readable_groups, k=depth,
                                                     typo_tolerant=self.cfg.typo_tolerance)]
        if self.cfg.retrieval == "lexical":
            return self.index.get(lexical[:k], principal=principal, query_vector=vector)
        dense = self.index.search(vector, principal=principal, k=depth)
        fused = rrf([[s.chunk_id for s in dense], lexical], [self.cfg.dense_weight, self.cfg.lexical_weight],
                    k=self.cfg.rrf_k)[:k]
        by_id = {s.chunk_id: s for s in dense}
        missing = [i for i in fused if i not in by_id]
        by_id.update({s.chunk_id: s for s in self.index.get(missing, principal=principal, query_vector=vector)})
        return [by_id[i] for i in fused if i in by_id]
