"""Which documents an adapter learned from have changed or gone since it was trained.

The manifest records each document's content hash at training time, and the readers
(ACL groups) the ingest ledger held for it then; the ledger holds each document's current
version (content hash and ACL). A document whose hash differs has changed, one whose
groups differ had its access changed (the adapter may now serve text its audience can no
longer read), one the ledger no longer knows was deleted (or its source removed).
Weights cannot unlearn, so a stale adapter keeps answering from the old text until it is
retrained: `ragtune adapters show` says so.

Example:
    >>> staleness({"docs:a.md": "h1"}, {"docs:a.md": ("h2", "public")})
    {'changed': ['docs:a.md'], 'acl_changed': [], 'deleted': [], 'unchanged': 0}
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def current_versions(ledger_path: Path) -> dict[str, tuple[str, str]] | None:
    """doc_id -> (content hash, ACL groups) of every committed document; None without a ledger."""
    if not Path(ledger_path).is_file():
        return None
    db = sqlite3.connect(f"file:{ledger_path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT doc_id, version FROM documents WHERE version IS NOT NULL").fetchall()
    finally:
        db.close()
    # The ledger's version is "<content hash>:<sorted groups, comma-separated>|<chunk layout>"
    # (connector.SourceItem.version, then framework.ingest.pipeline._version); ledgers from before the layout lack "|...".
    out = {}
    for doc_id, version in rows:
        content = version.rpartition("|")[0] if "|" in version else version
        out[doc_id] = tuple(content.split(":", 1)) if ":" in content else (content, "")
    return out


def staleness(trained: dict[str, str], current: dict[str, tuple[str, str]],
              trained_acl: dict[str, str] | None = None) -> dict:
    """Compare the manifest's {doc_id: hash} (and {doc_id: groups}) with the ledger's current state."""
    trained_acl = trained_acl or {}
    changed = sorted(d for d, h in trained.items() if d in current and current[d][0] != h)
    acl_changed = sorted(d for d, groups in trained_acl.items()
                         if d in current and d not in changed and current[d][1] != groups)
    deleted = sorted(d for d in trained if d not in current)
    return {"changed": changed, "acl_changed": acl_changed, "deleted": deleted,
            "unchanged": len(trained) - len(changed) - len(acl_changed) - len(deleted)}


def staleness_since_training(documents: dict[str, str], document_acl: dict[str, str] | None,
                             ledger_path: Path) -> dict | None:
    """What changed in the documents an adapter learned (its manifest's `documents` and
    `document_acl`) according to the workspace's ledger; None when there is no ledger yet."""
    current = current_versions(ledger_path)
    return None if current is None else staleness(dict(documents), current, dict(document_acl or {}))
