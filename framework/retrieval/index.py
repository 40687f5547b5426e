"""The Chroma vector index: upsert by chunk id, delete stale ids, search within an ACL.

Embedded (`PersistentClient` in the workspace, the default) or on a Chroma server
(`index.url`, through `HttpClient`); everything else, the ledger and the BM25 index
included, stays in the workspace either way, so both modes behave the same.

chromadb is used directly (not through LlamaIndex's store) because ingest needs
`upsert` and ACL lists in metadata. Collections are created in cosine space with the
embedding function disabled, so Chroma never downloads its default model; the
embedder's name is recorded on the collection and a mismatch is refused, since vectors
from two embedders cannot be compared.

A chunk's ACL is a Chroma metadata list searched with `$contains`. A chunk whose document has
an empty ACL is stored without the key at all (Chroma refuses empty lists), so no group, named
or not, can match it. Indexes written before that stored the sentinel `__nobody__` instead; it is
not a valid group name, so no principal can hold it, and reading a chunk drops it, so those
chunks stay unreadable without re-indexing (the BM25 index is rebuilt without it on first use).

Example:
    >>> idx = ChromaIndex.open(path=".ragtune/chroma", collection="docs", embedder_name="hashing-256")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from framework.config import IndexConfig
from framework.records import Chunk, Principal, Source, is_group
from framework.workspace import Workspace


class IndexConfigError(RuntimeError):
    """The index cannot be used as configured."""


def _client(path: str | None, url: str | None):
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if url:
        from urllib.parse import urlparse

        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise IndexConfigError(f"index.url: {url!r} is not an http(s) URL like http://127.0.0.1:8000")
        try:
            return chromadb.HttpClient(host=parsed.hostname, port=parsed.port or (443 if parsed.scheme == "https" else 80),
                                       ssl=parsed.scheme == "https", settings=settings)
        except ValueError as err:  # chromadb's way of saying the server did not answer
            raise IndexConfigError(f"index.url: no Chroma server answers at {url} ({err}); start one with "
                                   "`chroma run --host 127.0.0.1 --port 8000 --path <folder>` or fix index.url") from None
    return chromadb.PersistentClient(path=path, settings=settings)


class ChromaIndex:
    def __init__(self, collection) -> None:
        self.collection = collection
        self._dimension: int | None = None  # of the stored vectors, read once

    def check_dimension(self, dimension: int) -> None:
        """Raise IndexConfigError when vectors of `dimension` cannot go with the stored ones (an embedding
        server's model changed under the same name, or a `dimensions` setting did)."""
        if self._dimension is None:
            stored = self.collection.get(limit=1, include=["embeddings"])["embeddings"]
            if stored is None or len(stored) == 0:
                return
            self._dimension = len(stored[0])
        if dimension != self._dimension:
            name = (self.collection.metadata or {}).get("embedder", "?")
            raise IndexConfigError(
                f"index.collection: {self.collection.name!r} holds {self._dimension}-dimensional vectors and the "
                f"embedder {name!r} now gives {dimension}-dimensional ones; they cannot be mixed. Use a new "
                "index.collection name (or re-ingest into an empty workspace), or set index.endpoint.dimensions "
                f"to {self._dimension} if the server can reduce its vectors")

    @classmethod
    def from_config(cls, cfg: IndexConfig, *, workspace: Workspace, embedder_name: str) -> "ChromaIndex":
        """The `index` section's collection: on the Chroma server at `url`, else at `path` or in the workspace."""
        return cls.open(path=None if cfg.url else cfg.path or str(workspace.chroma), url=cfg.url,
                        collection=cfg.collection, embedder_name=embedder_name)

    @classmethod
    def open(cls, *, path: str | None, url: str | None = None, collection: str, embedder_name: str) -> "ChromaIndex":
        client = _client(path, url)
        col = client.get_or_create_collection(
            collection, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None,
            metadata={"embedder": embedder_name},
        )
        space = (col.configuration or {}).get("hnsw", {}) or {}
        if space.get("space", "cosine") != "cosine":
            raise IndexConfigError(f"index.collection: {collection!r} uses {space.get('space')} distance, not cosine; "
                              "choose another collection name or delete the workspace's chroma folder")
        recorded = (col.metadata or {}).get("embedder")
        if recorded and recorded != embedder_name:
            raise IndexConfigError(
                f"index.collection: {collection!r} was built with embedder {recorded!r}, config now says "
                f"{embedder_name!r}; vectors from different embedders cannot be mixed. Use a new "
                "index.collection name or re-ingest into an empty workspace."
            )
        return cls(col)

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        if not chunks:
            return
        self.check_dimension(int(vectors.shape[1]))
        self.collection.upsert(
            ids=[c.id for c in chunks],
            embeddings=vectors.tolist(),
            documents=[c.text for c in chunks],
            metadatas=[_metadata(c) for c in chunks],
        )

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self.collection.delete(ids=list(ids))

    def set_acl(self, ids: Sequence[str], acl: Sequence[str]) -> None:
        """Rewrite the ACL of stored chunks (ids not stored are skipped); an empty ACL removes the key, as
        `upsert` stores it, so nobody can read them."""
        present = self.collection.get(ids=list(ids), include=[])["ids"] if ids else []
        groups = [g for g in acl if is_group(g)]
        if present:
            self.collection.update(ids=present, metadatas=[{"acl": groups or None} for _ in present])

    def count(self) -> int:
        return self.collection.count()

    def ids(self) -> set[str]:
        return set(self._get_all([])["ids"])

    def acl_fingerprint(self) -> str:
        """Fingerprint of (chunk id, ACL) pairs, to tell whether the lexical index is current."""
        from framework.retrieval.lexical import chunks_fingerprint

        res = self._get_all(["metadatas"])
        return chunks_fingerprint(res["ids"], [list(_acl(m)) for m in res["metadatas"]])

    def _get_all(self, include: list[str], page: int = 5000) -> dict:
        """The whole collection in pages, so a large one on a Chroma server is not one huge response."""
        out: dict[str, list] = {"ids": [], **{k: [] for k in include}}
        for offset in range(0, self.collection.count(), page):
            res = self.collection.get(include=include, limit=page, offset=offset)
            for key in out:
                out[key].extend(res[key])
        return out

    def get(self, ids: Sequence[str], *, principal: Principal, query_vector: np.ndarray | None = None) -> list[Source]:
        """Chunks by id that the principal may read, in the given order; scored by cosine with a query vector."""
        if not ids:
            return []
        res = self.collection.get(ids=list(ids), where=_acl_filter(principal),
                                  include=["documents", "metadatas", "embeddings"])
        by_id = {}
        for i, d, m, e in zip(res["ids"], res["documents"], res["metadatas"], res["embeddings"]):
            score = float(np.dot(query_vector, np.asarray(e))) if query_vector is not None else 1.0
            by_id[i] = _source(i, d, m, score)
        return [by_id[i] for i in ids if i in by_id]

    def rows(self) -> list[Chunk]:
        """Every chunk, in id order: for synthesis and the lexical index, which then come out the
        same (ties included) whatever order the chunks were written in."""
        res = self._get_all(["documents", "metadatas"])
        rows = [_chunk(i, t, m) for i, t, m in zip(res["ids"], res["documents"], res["metadatas"])]
        return sorted(rows, key=lambda r: r.id)

    def search(self, vector: np.ndarray, *, principal: Principal, k: int) -> list[Source]:
        """Nearest chunks the principal may read; score is cosine similarity.

        Chroma's metadata filter scans the whole collection (about 23 ms at 10,000 chunks on
        2 cores), while an unfiltered nearest-neighbour query takes a few milliseconds. So the
        search first takes `4k` unfiltered neighbours and keeps the readable ones: when k of
        them are readable they are exactly the k nearest readable chunks. Only when the
        principal may read too few of them does it run the filtered query."""
        if principal is None:
            raise PermissionError("search needs a Principal; ACL filtering is never skipped")
        n = self.collection.count()
        if n == 0:
            return []
        self.check_dimension(int(len(vector)))
        readable = set(_groups(principal))
        wide = min(n, max(4 * k, 40))
        res = self.collection.query(query_embeddings=[vector.tolist()], n_results=wide,
                                    include=["documents", "metadatas", "distances"])
        rows = zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0])
        hits = [_source(i, d, m, 1.0 - dist) for i, d, m, dist in rows if readable.intersection(_acl(m))]
        if len(hits) >= k or wide == n:
            return hits[:k]
        res = self.collection.query(query_embeddings=[vector.tolist()], n_results=min(k, n),
                                    where=_acl_filter(principal), include=["documents", "metadatas", "distances"])
        return [_source(i, d, m, 1.0 - dist) for i, d, m, dist in
                zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0])]


def _groups(principal: Principal) -> tuple[str, ...]:
    """The principal's groups that an ACL can hold; Principal already refuses others, this is a second lock."""
    return tuple(g for g in principal.readable_groups if is_group(g))


def _acl(meta: dict) -> tuple[str, ...]:
    """A stored chunk's ACL: empty for a chunk nobody may read, whether stored without the key or (older
    indexes) with the `__nobody__` sentinel, which is not a group name."""
    return tuple(g for g in meta.get("acl") or () if is_group(g))


def _acl_filter(principal: Principal) -> dict:
    clauses = [{"acl": {"$contains": g}} for g in _groups(principal)]
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def _metadata(c: Chunk) -> dict:
    meta = {"doc_id": c.doc_id, "position": c.position, "title": c.title, "uri": c.uri, "source": c.source,
            "doc_hash": c.doc_hash, "section": c.section}
    acl = [g for g in c.acl if is_group(g)]
    if acl:  # an empty ACL is no key at all: nothing to match, and Chroma refuses empty lists
        meta["acl"] = acl
    if c.page is not None:
        meta["page"] = c.page
    if c.page_end is not None:
        meta["page_end"] = c.page_end
    return meta


def _chunk(chunk_id: str, text: str, meta: dict) -> Chunk:
    return Chunk(id=chunk_id, doc_id=meta["doc_id"], position=int(meta.get("position", 0)), text=text,
                 title=meta.get("title", ""), uri=meta.get("uri", ""), source=meta.get("source", ""),
                 doc_hash=meta.get("doc_hash", ""), acl=_acl(meta), section=meta.get("section", ""),
                 page=meta.get("page"), page_end=meta.get("page_end"))


def _source(chunk_id: str, text: str, meta: dict, score: float) -> Source:
    page = meta.get("page")
    uri = meta.get("uri", "")
    return Source(chunk_id=chunk_id, doc_id=meta["doc_id"], title=meta.get("title", ""),
                  uri=f"{uri}#page={page}" if page else uri, score=round(float(score), 4), text=text,
                  section=meta.get("section", ""), page=page, page_end=meta.get("page_end"))
