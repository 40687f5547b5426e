"""Ingest: documents from every configured source into the Chroma index, incrementally.

Each document is classified against the ledger as new, changed, unchanged or deleted.
Unchanged documents cost a hash; changed ones replace their chunks (new ids upserted,
stale ids deleted); deleted ones leave the index. One bad file is a report entry, never
an aborted run. Two ingests on one workspace are refused: the second fails at once.

Nothing is lost to a bad read: a document that still exists but fails (emptied by a cut-short
save, corrupt, over a limit, or parsed to no real text: only whitespace or markup fragments such as
"<ht", judged by framework.ingest.contract.real_text for every connector) keeps its indexed chunks,
and its report entry says `kept previous version`, until it reads again or is deleted. Each
entry's reason names the document once, then the cause and what to do; warnings its parser raised
are in the entry.

Nothing is kept wider than the config says, either: kept chunks are given the ACL the config
gives their document now, when the connector can tell it without reading the document
(LoadFailure.acl); the BM25 index follows, since its fingerprint covers ACLs. Where it cannot
(a failure hiding several documents), they are kept only while the source's ACL config is the
one its last ingest recorded; after a change they leave the index until they read again, and
the entry says why.

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
from typing import Callable, Iterator, Sequence

from framework.config import IndexConfig, IngestConfig
from framework.ingest.chunking import chunk_document, chunk_layout, embedding_text, make_splitter
from framework.ingest.contract import NO_REAL_TEXT, Connector, LoadFailure, SourceItem, real_text
from framework.ingest.keep import Keeper, acl_config
from framework.ingest.ledger import Ledger
from framework.ingest.parse_pool import ParsePool
from framework.ingest.protocols import ChunkStore, Embedder
from framework.records import Chunk, Document
from framework.runtime.progress import track
from framework.workspace import Workspace

log = logging.getLogger(__name__)


# scan = listing and hashing; parse = worker time summed over documents; write = Chroma upserts/deletes
# and the ledger; lexical = the BM25 rebuild after the run; total = the wall-clock time of the run.
STAGES = ("scan", "parse", "chunk", "embed", "write", "lexical", "total")


class WorkspaceBusyError(RuntimeError):
    """Another ingest holds the workspace lock."""


@dataclass
class IngestReport:
    counts: Counter = field(default_factory=Counter)
    chunks_embedded: int = 0
    chunks_deleted: int = 0
    failures: list[dict] = field(default_factory=list)
    seconds: Counter = field(default_factory=Counter)
    warnings: list[dict] = field(default_factory=list)  # documents indexed despite their parser's warnings

    def to_dict(self) -> dict:
        """What `ragtune ingest --json` prints. Parsing runs in worker processes beside chunking and
        embedding, so the stage seconds can add up to more than `total`."""
        return {
            "documents": {k: self.counts.get(k, 0) for k in ("new", "changed", "unchanged", "deleted", "failed")},
            "chunks_embedded": self.chunks_embedded,
            "chunks_deleted": self.chunks_deleted,
            "failures": self.failures,
            "warnings": self.warnings,
            "seconds": {k: round(self.seconds.get(k, 0.0), 3) for k in STAGES},
        }


@contextmanager
def workspace_lock(workspace: Workspace) -> Iterator[None]:
    """Held for the whole ingest: a second ingest on the same workspace fails at once."""
    workspace.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(workspace.ingest_lock, os.O_CREAT | os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkspaceBusyError(
                f"another ingest is running on workspace {workspace.root}; wait for it to finish "
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


def ingest(connectors: Sequence[Connector], *, embedder: Embedder, index: ChunkStore, ledger: Ledger,
           chunk_size: int | None, chunk_overlap: int, batch_size: int = 64, parse_workers: int = 1,
           parse_timeout_s: float = 60.0, show_progress: bool = True,
           on_step: Callable[[str], None] | None = None) -> IngestReport:
    """Bring the index up to date with `connectors`; see the module docstring for the guarantees.

    `on_step` is called with the name of each durable step as it completes (`parsed`, `upserted`,
    `committed`, `removed`): progress hooks, and the crash-safety tests' exact kill points."""
    step = on_step or (lambda point: None)
    report = IngestReport()
    started = time.perf_counter()
    splitter = make_splitter(embedder, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    layout = chunk_layout(splitter)
    for connector in connectors:
        config = acl_config(connector)
        keeper = Keeper(index, ledger, acl_changed=ledger.acl_config(connector.name) != config)
        with _timed(report, "scan"):
            todo, seen = _classify(connector, ledger, report, layout, keeper)
        pending: list[tuple[Document, list[Chunk], str]] = []
        with ParsePool([item for item, _ in todo], workers=parse_workers, timeout_s=parse_timeout_s) as pool:
            results = track(pool.results(), f"ingest {connector.name}", total=len(todo),
                            enabled=show_progress and bool(todo))
            for position, doc, error, seconds, warned in results:
                item, state = todo[position]
                report.seconds["parse"] += seconds
                if doc is not None and not real_text(doc.text):  # every connector's "empty", decided once
                    doc, error = None, NO_REAL_TEXT
                if doc is None:
                    with _timed(report, "write"):
                        note, kept = keeper.settle(item.doc_id, item.acl)
                    _fail(report, item.uri, error or "the connector returned no document", item.doc_id,
                          note=note, warnings=warned)
                    if not kept:
                        seen.discard(item.doc_id)
                    continue
                if warned:
                    report.warnings.append({**_where(item.uri, item.doc_id), "warnings": list(warned)})
                with _timed(report, "chunk"):
                    chunks = chunk_document(doc, splitter)
                report.counts[state] += 1
                pending.append((doc, chunks, _version(item, layout)))
                step("parsed")
                if sum(len(c) for _, c, _ in pending) >= batch_size * 4:
                    _write(pending, embedder, index, ledger, report, step)
                    pending = []
        _write(pending, embedder, index, ledger, report, step)
        _remove_deleted(ledger.doc_ids(connector.name) - seen, index, ledger, report, step, failed=keeper.dropped)
        ledger.record_acl_config(connector.name, config)
    # A source removed from (or renamed in) the config takes its documents out of the index.
    for gone in sorted(ledger.sources() - {c.name for c in connectors}):
        log.warning("source %r is no longer configured; removing its documents from the index", gone)
        _remove_deleted(ledger.doc_ids(gone), index, ledger, report, step)
    report.seconds["total"] += time.perf_counter() - started
    return report


def ingest_sources(connectors: Sequence[Connector], *, workspace: Workspace, embedder: Embedder, index: ChunkStore,
                   index_cfg: IndexConfig, ingest_cfg: IngestConfig, show_progress: bool = True,
                   on_step: Callable[[str], None] | None = None,
                   then: Callable[[], float] | None = None) -> IngestReport:
    """`ingest` under the workspace lock with the workspace's ledger, as configured; `then` runs
    before the lock is released (the lexical index rebuild) and returns the seconds it took."""
    names = [c.name for c in connectors]
    if not names:
        raise ValueError("config has no sources; add one under `sources:` (see docs/configuration.md)")
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be unique across the config and `extra`; got {names}")
    with workspace_lock(workspace):
        ledger = Ledger(workspace.ledger)
        try:
            report = ingest(connectors, embedder=embedder, index=index, ledger=ledger, chunk_size=index_cfg.chunk_size,
                            chunk_overlap=index_cfg.chunk_overlap, batch_size=index_cfg.batch_size,
                            parse_workers=ingest_cfg.parse_workers, parse_timeout_s=ingest_cfg.parse_timeout_s,
                            show_progress=show_progress, on_step=on_step)
        finally:
            ledger.close()
        if then is not None:
            seconds = then()
            report.seconds["lexical"] += seconds
            report.seconds["total"] += seconds
    return report


def scan_changes(connectors: Sequence[Connector], *, workspace: Workspace, embedder: Embedder,
                 index_cfg: IndexConfig) -> dict[str, list[str]]:
    """The ids of the documents the next ingest would add, change and delete, found by scanning and
    hashing only: nothing is parsed, embedded or written (`ragtune refresh --dry-run`)."""
    layout = chunk_layout(make_splitter(embedder, chunk_size=index_cfg.chunk_size,
                                        chunk_overlap=index_cfg.chunk_overlap))
    out: dict[str, list[str]] = {"new": [], "changed": [], "deleted": []}
    ledger = Ledger(workspace.ledger)
    try:
        for connector in connectors:
            keeper = Keeper(None, ledger, acl_changed=ledger.acl_config(connector.name) != acl_config(connector))
            todo, seen = _classify(connector, ledger, IngestReport(), layout, keeper)
            for item, state in todo:
                out[state].append(item.doc_id)
            out["deleted"] += sorted(ledger.doc_ids(connector.name) - seen)
        for gone in sorted(ledger.sources() - {c.name for c in connectors}):
            out["deleted"] += sorted(ledger.doc_ids(gone))
    finally:
        ledger.close()
    return out


def _version(item: SourceItem, layout: str) -> str:
    """What the ledger compares: the document's content and ACL, and how it was cut into chunks,
    so changing `index.chunk_size` (or a new chunker) re-chunks documents whose text did not change."""
    return f"{item.version}|{layout}"


def _classify(connector: Connector, ledger: Ledger, report: IngestReport, layout: str,
              keeper: Keeper) -> tuple[list[tuple[SourceItem, str]], set[str]]:
    """Scan a source: the items to parse with their state, and every document id still present."""
    todo: list[tuple[SourceItem, str]] = []
    seen: set[str] = set()
    hiding: list[LoadFailure] = []
    for item in connector.scan():
        if isinstance(item, LoadFailure):
            if item.keep_prefix:
                hiding.append(item)  # reported below, once the documents it keeps are known
                continue
            note, kept = keeper.settle(item.doc_id, item.acl)
            _fail(report, item.uri, item.reason, item.doc_id, note=note)
            if kept and item.doc_id:
                seen.add(item.doc_id)
            continue
        seen.add(item.doc_id)
        state = ledger.state(item.doc_id, _version(item, layout))
        if state == "unchanged":
            report.counts["unchanged"] += 1
        else:
            todo.append((item, state))
    indexed = ledger.doc_ids(connector.name)
    for failure in hiding:
        hidden = {d for d in indexed - seen if d.startswith(failure.keep_prefix or "")}
        note, kept = keeper.settle_hidden(hidden, failure.acl)
        seen |= kept
        _fail(report, failure.uri, failure.reason, failure.doc_id, note=note)
    return todo, seen


def _fail(report: IngestReport, uri: str, reason: str, doc_id: str | None = None, *, note: str = "",
          warnings: Sequence[str] = ()) -> None:
    """One report entry: the document named once, the cause and the fix, and what became of its indexed
    chunks (`note`, from framework.ingest.keep: kept, given the current ACL, or removed)."""
    where = _where(uri, doc_id)
    text = f"{where['path']}: {reason.strip().rstrip('.')}" + (f"; {note}" if note else "")
    report.counts["failed"] += 1
    report.failures.append({**where, "reason": text, "kept_previous": note.startswith("kept"),
                            "warnings": list(warnings)})
    log.warning("skipped %s", text)


def _where(uri: str, doc_id: str | None) -> dict:
    return {"uri": uri, "path": _path(uri), "doc_id": doc_id}


def _write(batch: list[tuple[Document, list[Chunk], str]], embedder: Embedder, index: ChunkStore, ledger: Ledger,
           report: IngestReport, step: Callable[[str], None]) -> None:
    """Embed and upsert a batch of documents, then delete their stale chunks and commit.

    Order matters for crash safety: new ids are pending in the ledger before the index
    changes, and a document is committed only after its stale chunks are gone."""
    if not batch:
        return
    for doc, chunks, _ in batch:
        ledger.begin(doc.id, doc.source, doc.uri, [c.id for c in chunks])
    chunks = [c for _, cs, _ in batch for c in cs]
    with _timed(report, "embed"):
        vectors = embedder.embed([embedding_text(c.title, c.text, c.section) for c in chunks]) if chunks else None
    with _timed(report, "write"):
        index.upsert(chunks, vectors)
        step("upserted")
        for doc, cs, version in batch:
            new_ids = [c.id for c in cs]
            stale = sorted(ledger.known_ids(doc.id) - set(new_ids))
            index.delete(stale)
            report.chunks_deleted += len(stale)
            ledger.commit(doc.id, version, new_ids)
            step("committed")
    report.chunks_embedded += len(chunks)


def _remove_deleted(doc_ids: set[str], index: ChunkStore, ledger: Ledger, report: IngestReport,
                    step: Callable[[str], None], failed: set[str] = frozenset()) -> None:
    """Take documents out of the index; those in `failed` (already counted as failures) are not counted as
    deleted."""
    for doc_id in sorted(doc_ids):
        ids = sorted(ledger.known_ids(doc_id))
        index.delete(ids)
        step("removed")
        ledger.forget(doc_id)
        report.chunks_deleted += len(ids)
        report.counts["deleted"] += doc_id not in failed


def _path(uri: str) -> str:
    """A file uri as a local path for the report (an entry of a zip export after `#`); other uris unchanged."""
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        parsed = urlparse(uri)
        return unquote(parsed.path) + (f"#{parsed.fragment}" if parsed.fragment else "")
    return uri
