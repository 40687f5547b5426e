"""Retrieval: dense (Chroma), lexical (BM25) or both fused, always within the principal's ACL.

`index.retrieval: hybrid` (the default) takes `index.candidates` results from each
index, fuses the rankings by reciprocal rank fusion and keeps the top k. Every
returned chunk is scored by its cosine similarity to the question, whichever list
found it, so `auto` mode and callers read one scale. An optional reranker
(framework.retrieval.rerank) reorders `index.rerank_candidates` first-stage results.

Example:
    >>> retriever = Retriever(index, embedder, lexical_dir, cfg.index)              # doctest: +SKIP
    >>> retriever.retrieve("meal limit", principal=Principal(groups=("finance",)))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path

from framework.config import IndexConfig
from framework.ingest.chunking import embedding_text
from framework.records import Principal, Source
from framework.retrieval.embedder import Embedder
from framework.retrieval.index import ChromaIndex
from framework.retrieval.lexical import LexicalIndex, rrf
from framework.retrieval.rerank import CrossEncoderReranker, Reranker
from framework.workspace import Workspace

log = logging.getLogger(__name__)


def sync_lexical(index: ChromaIndex, folder: Path) -> LexicalIndex:
    """Load the BM25 index, rebuilding it when its chunks or ACLs differ from the vector index's."""
    current = LexicalIndex.load(folder)
    if current is not None and current.fingerprint == index.acl_fingerprint():
        return current
    rows = index.rows()
    log.info("rebuilding the lexical index over %d chunks", len(rows))
    lexical = LexicalIndex.build(ids=[r.id for r in rows], texts=[embedding_text(r.title, r.text, r.section) for r in rows],
                                 acls=[list(r.acl) for r in rows])
    lexical.save(folder)
    return lexical


class Retriever:
    def __init__(self, index: ChromaIndex, embedder: Embedder, lexical_dir: Path, cfg: IndexConfig,
                 reranker: Reranker | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self.lexical_dir = lexical_dir
        self.cfg = cfg
        self.reranker = reranker
        self._lexical: LexicalIndex | None = None
        self._lexical_lock = threading.Lock()  # a server's first questions arrive together: build BM25 once

    @classmethod
    def from_config(cls, index: ChromaIndex, embedder: Embedder, cfg: IndexConfig, *, workspace: Workspace,
                    reranker: Reranker | None = None, device: str = "cpu") -> "Retriever":
        """Retrieval as the `index` section says; a local cross-encoder on `device` when `reranker` names one."""
        if reranker is None and cfg.reranker:
            reranker = CrossEncoderReranker(cfg.reranker, device=device)
        return cls(index, embedder, workspace.lexical(cfg.collection), cfg, reranker=reranker)

    @property
    def lexical(self) -> LexicalIndex:
        with self._lexical_lock:
            if self._lexical is None:
                self._lexical = sync_lexical(self.index, self.lexical_dir)
            return self._lexical

    def refresh(self) -> None:
        """Call after an ingest: the next search re-syncs the lexical index."""
        self._lexical = None

    def rebuild_lexical(self) -> float:
        """Re-sync the lexical index now (after an ingest, not on the first question); returns seconds."""
        start = time.perf_counter()
        self.refresh()
        if self.cfg.retrieval != "dense":
            self.lexical  # noqa: B018 - the property loads or rebuilds it
        return time.perf_counter() - start

    def retrieve(self, question: str, *, principal: Principal, k: int | None = None) -> list[Source]:
        if principal is None:
            raise PermissionError("retrieval needs a Principal; ACL filtering is never skipped")
        return self._reranked(question, self.embedder.embed([question])[0], principal, k or self.cfg.top_k)

    def fingerprint(self) -> str:
        """Names the searchable state (chunks, ACLs, embedder, fusion settings): results found under an
        equal fingerprint are still valid (synthesis reuses its round-trip ranks)."""
        c = self.cfg
        state = [self.index.acl_fingerprint(), self.embedder.name, c.retrieval, c.dense_weight, c.lexical_weight,
                 c.rrf_k, c.candidates]
        return hashlib.sha256(json.dumps(state).encode()).hexdigest()[:16]

    def readable_by(self, principal: Principal) -> bool:
        """Whether the principal may read any chunk at all (scoring as someone who reads nothing
        gives zeros that look like a bad index). Asks the dense index, which answers any query with
        the nearest readable chunk, where BM25 may match nothing."""
        return bool(self.index.search(self.embedder.embed(["probe"])[0], principal=principal, k=1))

    def retrieve_many(self, questions: list[str], *, principal: Principal, k: int | None = None) -> list[list[Source]]:
        """`retrieve` for many questions, embedded in batches (checking thousands of synthetic questions)."""
        if principal is None:
            raise PermissionError("retrieval needs a Principal; ACL filtering is never skipped")
        vectors = self.embedder.embed(list(questions)) if questions else []
        return [self._reranked(q, v, principal, k or self.cfg.top_k) for q, v in zip(questions, vectors)]

    def _reranked(self, question: str, vector, principal: Principal, k: int) -> list[Source]:
        if self.reranker is None:
            return self._search(question, vector, principal, k)
        candidates = self._search(question, vector, principal, max(k, self.cfg.rerank_candidates))
        return self.reranker.rerank(question, candidates)[:k]

    def _search(self, question: str, vector, principal: Principal, k: int) -> list[Source]:
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
