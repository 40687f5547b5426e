"""The ingest ledger: which documents are indexed, at which version, with which chunks.

SQLite in WAL mode. Each document row holds its version (content hash + ACL) and the chunk ids in
the index; each source row, its ACL config at its last completed ingest. A document's new chunk ids are written as `pending` before the index is
touched and committed after, so a run killed at any point is finished by the next
one: the document still looks changed, and the stale ids of both versions are known.

Example:
    >>> led = Ledger(":memory:")
    >>> led.state("files:a.md", "h1")
    'new'
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    uri TEXT NOT NULL,
    version TEXT,
    chunk_ids TEXT NOT NULL DEFAULT '[]',
    pending_ids TEXT,
    indexed_at TEXT
);
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY,
    acl_config TEXT NOT NULL
);
"""


class Ledger:
    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def state(self, doc_id: str, version: str) -> str:
        """new | changed | unchanged; a document with pending ids is changed.

        `version` is the connector's SourceItem.version: content hash plus ACL."""
        row = self.db.execute("SELECT version, pending_ids FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        if row is None or row[0] is None:
            return "new"
        if row[1] is not None or row[0] != version:
            return "changed"
        return "unchanged"

    def indexed(self, doc_id: str) -> bool:
        """Whether a version of the document was committed: it has chunks in the index to keep."""
        row = self.db.execute("SELECT version FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return row is not None and row[0] is not None

    def known_ids(self, doc_id: str) -> set[str]:
        """Committed and pending chunk ids: everything this document may have in the index."""
        row = self.db.execute("SELECT chunk_ids, pending_ids FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        if row is None:
            return set()
        return set(json.loads(row[0])) | set(json.loads(row[1] or "[]"))

    def begin(self, doc_id: str, source: str, uri: str, new_ids: list[str]) -> None:
        row = self.db.execute("SELECT pending_ids FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        pending = sorted(set(json.loads(row[0] or "[]") if row else ()) | set(new_ids))
        self.db.execute(
            "INSERT INTO documents (doc_id, source, uri, pending_ids) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(doc_id) DO UPDATE SET pending_ids=excluded.pending_ids, uri=excluded.uri",
            (doc_id, source, uri, json.dumps(pending)),
        )

    def commit(self, doc_id: str, version: str, new_ids: list[str]) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.db.execute(
            "UPDATE documents SET version=?, chunk_ids=?, pending_ids=NULL, indexed_at=? WHERE doc_id=?",
            (version, json.dumps(new_ids), now, doc_id),
        )

    def version(self, doc_id: str) -> str | None:
        row = self.db.execute("SELECT version FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return row[0] if row else None

    def set_version(self, doc_id: str, version: str) -> None:
        """Rename the committed version, its chunks unchanged (a kept document given its current ACL)."""
        self.db.execute("UPDATE documents SET version=? WHERE doc_id=?", (version, doc_id))

    def acl_config(self, source: str) -> str | None:
        """The source's ACL config as its last completed ingest recorded it; None: never recorded."""
        row = self.db.execute("SELECT acl_config FROM sources WHERE name=?", (source,)).fetchone()
        return row[0] if row else None

    def record_acl_config(self, source: str, acl_config: str) -> None:
        self.db.execute("INSERT INTO sources (name, acl_config) VALUES (?, ?) "
                        "ON CONFLICT(name) DO UPDATE SET acl_config=excluded.acl_config", (source, acl_config))

    def forget(self, doc_id: str) -> None:
        self.db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))

    def fingerprint(self) -> str:
        """A hash of every document's id and committed version: equal fingerprints, same indexed documents
        (a refresh skips its work when nothing changed since it last looked)."""
        rows = self.db.execute("SELECT doc_id, version, pending_ids FROM documents ORDER BY doc_id").fetchall()
        return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]

    def sources(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT source FROM documents")}

    def doc_ids(self, source: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT doc_id FROM documents WHERE source=?", (source,))}
