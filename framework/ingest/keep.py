"""What the indexed chunks of a document that failed to read become, and under which ACL.

Nothing is lost to a bad read (framework.ingest.pipeline): a document that still exists keeps
its chunks until it reads again. Nothing is kept wider than the config says either: when the
connector knows who may read the document now without reading it (`LoadFailure.acl`, or the
scanned item's ACL when parsing fails), the kept chunks are given that ACL, in the index and in
the ledger's version (the BM25 index follows, its fingerprint covers ACLs). When it does not (a
failure that hides documents, an ACL that depends on the unreadable content), the chunks are kept
only while the source's ACL config (`acl`, `public`, `acl_paths`) is what its last ingest
recorded; after a change they leave the index until they read again, and the report says why.

Example:
    >>> keeper = Keeper(index, ledger, acl_changed=False)              # doctest: +SKIP
    >>> keeper.settle("docs:salaries.md", ("hr",))                     # doctest: +SKIP
    ('kept previous version under the ACL the config gives it now: hr', True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from framework.ingest.acl import AclPolicy
from framework.ingest.contract import Connector
from framework.ingest.ledger import Ledger
from framework.ingest.protocols import ChunkStore


def acl_config(connector: Connector) -> str:
    """The source's ACL config as ledger text: its groups, `public` and `acl_paths` ('' for a connector
    that exposes no AclPolicy as `acl`)."""
    policy = getattr(connector, "acl", None)
    if not isinstance(policy, AclPolicy):
        return ""
    return json.dumps({"groups": sorted(policy.groups), "public": policy.public,
                       "acl_paths": sorted([pattern, sorted(groups)] for pattern, groups in policy.by_path)})


@dataclass
class Keeper:
    """What happens to the indexed chunks of a document that failed to read, and the report's note on it.

    ACL known (LoadFailure.acl, or the scanned item's): kept, with that ACL written over theirs. Unknown:
    kept while the source's ACL config is unchanged since its last ingest, else removed (they come back
    when the document reads again), since the old ACL may be wider than the new config allows."""

    index: ChunkStore | None  # None: a dry run (`scan_changes`), which decides the same but writes nothing
    ledger: Ledger
    acl_changed: bool
    dropped: set[str] = field(default_factory=set)  # removed here: failures, not deletions, in the report

    def settle(self, doc_id: str | None, acl: tuple[str, ...] | None) -> tuple[str, bool]:
        """(note, kept) for one document: kept means it stays in the index (and among the scanned ids)."""
        if not doc_id or not self.ledger.indexed(doc_id):
            return "", bool(doc_id)  # nothing indexed to keep; a named document is not "deleted"
        if acl is not None:
            return "kept previous version" + self._reacl(doc_id, acl), True
        if not self.acl_changed:
            return "kept previous version", True
        self.dropped.add(doc_id)
        return ("removed its previous version from the index: the source's ACL config changed since the last "
                "ingest, and who may read this document is known only once it reads again"), False

    def settle_hidden(self, doc_ids: set[str], acl: tuple[str, ...] | None) -> tuple[str, set[str]]:
        """(note, the ids kept) for the indexed documents a failure hides (LoadFailure.keep_prefix)."""
        n = len(doc_ids)
        docs = f"{n} previously indexed document{'s' * (n != 1)} it holds"
        if not doc_ids:
            return "", set()
        if acl is None and self.acl_changed:
            self.dropped |= doc_ids
            return (f"removed {docs} from the index: the source's ACL config changed since the last ingest, and "
                    "who may read them is known only once they read again"), set()
        changed = [self._reacl(d, acl) for d in sorted(doc_ids)] if acl is not None else []
        return f"kept {docs}" + next((c for c in changed if c), ""), set(doc_ids)

    def _reacl(self, doc_id: str, acl: tuple[str, ...]) -> str:
        """Give a kept document's chunks `acl`; the note's suffix when that changed who may read them."""
        if self.index is not None:
            self.index.set_acl(sorted(self.ledger.known_ids(doc_id)), acl)
        version = self.ledger.version(doc_id) or ""
        content, bar, layout = version.partition("|")  # "<hash>:<groups>|<layout>"; no group holds "|"
        renamed = f"{content.split(':', 1)[0]}:{','.join(sorted(acl))}{bar}{layout}"
        if renamed == version:
            return ""
        if self.index is not None:
            self.ledger.set_version(doc_id, renamed)
        return f" under the ACL the config gives it now: {', '.join(sorted(acl)) or 'nobody'}"
