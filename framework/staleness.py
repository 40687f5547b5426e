"""Which documents an adapter learned from have changed or gone since it was trained.

The manifest records each document's content hash at training time; the ingest ledger
holds each document's current version (content hash and ACL). A document whose hash
differs has changed, one the ledger no longer knows was deleted (or its source removed).
Weights cannot unlearn, so a stale adapter keeps answering from the old text until it is
retrained: `ragtune adapters show` says so.

Example:
    >>> staleness({"docs:a.md": "h1"}, {"docs:a.md": "h2"})
    {'changed': ['docs:a.md'], 'deleted': [], 'unchanged': 0}
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def current_hashes(ledger_path: Path) -> dict[str, str] | None:
    """doc_id -> content hash of every committed document in the ledger; None without a ledger."""
    if not Path(ledger_path).is_file():
        return None
    db = sqlite3.connect(f"file:{ledger_path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT doc_id, version FROM documents WHERE version IS NOT NULL").fetchall()
    finally:
        db.close()
    # The ledger's version is "<content hash>:<acl groups>" (connector.SourceItem.version).
    return {doc_id: version.split(":", 1)[0] for doc_id, version in rows}


def staleness(trained: dict[str, str], current: dict[str, str]) -> dict:
    """Compare the manifest's {doc_id: hash} with the ledger's current hashes."""
    changed = sorted(d for d, h in trained.items() if d in current and current[d] != h)
    deleted = sorted(d for d in trained if d not in current)
    return {"changed": changed, "deleted": deleted, "unchanged": len(trained) - len(changed) - len(deleted)}
