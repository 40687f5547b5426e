"""Ingest: documents from every configured source into the Chroma index, incrementally.

Each document is classified against the ledger as new, changed, unchanged or deleted.
Unchanged documents cost a hash; changed ones replace their chunks (new ids upserted,
stale ids deleted); deleted ones leave the index. One bad file is a report entry, never
an aborted run. Two ingests on one workspace are refused: the second fails at once.

Example:
    >>> report = project.ingest()            # doctest: +SKIP
    >>> report.counts["unchanged"]           # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from framework.chunking import chunk_document, embedding_text, make_splitter
from framework.connector import Connector, LoadFailure, SourceItem
from framework.embedder import Embedder
from framework.index import ChromaIndex
from framework.ledger import Ledger
from framework.progress import track
from framework.records import Chunk, Document

log = logging.getLogger(__name__)


class WorkspaceBusyError(RuntimeError):
    """Another ingest holds the workspace lock."""


@dataclass
class IngestReport:
    counts: Counter = field(default_factory=Counter)
    chunks_embedded: int = 0
    chunks_deleted: int = 0
    failures: list[dict] = field(default_factory=list)
    seconds: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {
            "documents": {k: self.counts.get(k, 0) for k in ("new", "changed", "unchanged", "deleted", "failed")},
            "chunks_embedded": self.chunks_embedded,
            "chunks_deleted": self.chunks_deleted,
            "failures": self.failures,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


@contextmanager
def workspace_lock(workspace: Path) -> Iterator[None]:
    workspace.mkdir(parents=True, exist_ok=True)
    fd = os.open(workspace / "ingest.lock", os.O_CREAT | os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkspaceBusyError(
                f"another ingest is running on workspace {workspace}; wait for it to finish "
                "(a killed run releases the lock automatically)"
            ) from None
        yield
    finally:
        os.close(fd)


@contextmanager
def _timed(report: IngestReport, stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        report.seconds[stage] += time.perf_counter() - start


def ingest(connectors: Sequence[Connector], *, embedder: Embedder, index: ChromaIndex, ledger: Ledger,
           chunk_size: int | None, chunk_overlap: int, batch_size: int = 64,
           show_progress: bool = True) -> IngestReport:
    report = IngestReport()
    splitter = make_splitter(embedder, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    for connector in connectors:
        with _timed(report, "scan"):
            found = list(connector.scan())
        seen: set[str] = set()
        pending: list[tuple[Document, list[Chunk], str]] = []
        for item in track(found, f"ingest {connector.name}", enabled=show_progress):
            if isinstance(item, LoadFailure):
                _fail(report, item.uri, item.reason)
                if item.doc_id:
                    seen.add(item.doc_id)
                continue
            seen.add(item.doc_id)
            state = ledger.state(item.doc_id, item.version)
            if state == "unchanged":
                report.counts["unchanged"] += 1
                continue
            doc = _read(item, report)
            if doc is None:
                continue
            with _timed(report, "chunk"):
                chunks = chunk_document(doc, splitter)
            report.counts[state] += 1
            pending.append((doc, chunks, item.version))
            if sum(len(c) for _, c, _ in pending) >= batch_size * 4:
                _write(pending, embedder, index, ledger, report)
                pending = []
        _write(pending, embedder, index, ledger, report)
        _remove_deleted(ledger.doc_ids(connector.name) - seen, index, ledger, report)
    # A source removed from (or renamed in) the config takes its documents out of the index.
    for gone in sorted(ledger.sources() - {c.name for c in connectors}):
        log.warning("source %r is no longer configured; removing its documents from the index", gone)
        _remove_deleted(ledger.doc_ids(gone), index, ledger, report)
    return report


def _read(item: SourceItem, report: IngestReport) -> Document | None:
    with _timed(report, "parse"):
        try:
            return item.read()
        except Exception as err:  # one bad file must never abort the run; it is reported instead
            _fail(report, item.uri, f"{type(err).__name__}: {err}")
            return None


def _fail(report: IngestReport, uri: str, reason: str) -> None:
    report.counts["failed"] += 1
    report.failures.append({"uri": uri, "reason": reason})
    log.warning("skipped %s: %s", uri, reason)


def _write(batch: list[tuple[Document, list[Chunk], str]], embedder: Embedder, index: ChromaIndex, ledger: Ledger,
           report: IngestReport) -> None:
    """Embed and upsert a batch of documents, then delete their stale chunks and commit."""
    if not batch:
        return
    for doc, chunks, _ in batch:
        ledger.begin(doc.id, doc.source, doc.uri, [c.id for c in chunks])
    chunks = [c for _, cs, _ in batch for c in cs]
    with _timed(report, "embed"):
        vectors = embedder.embed([embedding_text(c.title, c.text, c.section) for c in chunks]) if chunks else None
    with _timed(report, "write"):
        index.upsert(chunks, vectors)
        for doc, cs, version in batch:
            new_ids = [c.id for c in cs]
            stale = sorted(ledger.known_ids(doc.id) - set(new_ids))
            index.delete(stale)
            report.chunks_deleted += len(stale)
            ledger.commit(doc.id, version, new_ids)
    report.chunks_embedded += len(chunks)


def _remove_deleted(doc_ids: set[str], index: ChromaIndex, ledger: Ledger, report: IngestReport) -> None:
    for doc_id in sorted(doc_ids):
        ids = sorted(ledger.known_ids(doc_id))
        index.delete(ids)
        ledger.forget(doc_id)
        report.chunks_deleted += len(ids)
        report.counts["deleted"] += 1
