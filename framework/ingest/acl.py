"""Who may read a document: one policy object shared by every connector.

A source's config gives its groups (`acl:`), may mark it `public: true`, and may map path
patterns within it to more groups (`acl_paths:`). Exports that carry their own permissions
(a private Slack channel's members, say) pass them as `carried`. The result is the
document's `acl`; an empty one means nobody can read it, never everybody.

Group names follow one rule (framework.records.GROUP_PATTERN). Configured groups that break it
are errors; carried ones (an SQL column, a reader's metadata) that break it are left out with a
warning, since no principal could ever hold them: a document whose carried groups are all
malformed gets an empty access list and is read by nobody.

Example:
    >>> policy = AclPolicy(groups=("staff",), by_path=(("hr/*", ("hr",)),))
    >>> policy.for_path("hr/salaries.md")
    ('hr', 'staff')
    >>> policy.for_path("handbook.md")
    ('staff',)
    >>> AclPolicy().for_path("anything.md")
    ()
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Iterable

from framework.ingest.contract import SourceConfig
from framework.records import check_group, is_group

log = logging.getLogger(__name__)

PUBLIC = "public"


@dataclass(frozen=True)
class AclPolicy:
    """Groups for documents of one source.

    `by_path` patterns use shell globs matched against the document's path within its
    source (`/`-separated; `*` also crosses `/`), and every matching pattern adds its groups.
    """

    groups: tuple[str, ...] = ()
    public: bool = False
    by_path: tuple[tuple[str, tuple[str, ...]], ...] = ()
    _warned: set = field(default_factory=set, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for group in (*self.groups, *(g for _, extra in self.by_path for g in extra)):
            check_group(group, where="acl group")

    @classmethod
    def from_config(cls, cfg: SourceConfig) -> "AclPolicy":
        """Build from any source config with `acl`, `public` and `acl_paths` keys."""
        return cls(groups=tuple(cfg.acl), public=bool(cfg.public),
                   by_path=tuple((pattern, tuple(groups)) for pattern, groups in cfg.acl_paths.items()))

    def for_path(self, path: str = "", carried: Iterable[str] = ()) -> tuple[str, ...]:
        """The sorted, de-duplicated groups that may read the document at `path`."""
        if self.public:
            return (PUBLIC,)
        groups = set(self.groups) | {g for g in carried if self._usable(g, path)}
        for pattern, extra in self.by_path:
            if fnmatchcase(path, pattern):
                groups.update(extra)
        return tuple(sorted(groups))

    def _usable(self, group: str, path: str) -> bool:
        if is_group(group):
            return True
        if group not in self._warned:  # once per name, not once per row of a large table
            self._warned.add(group)
            log.warning("acl group %r (first seen at %r) is not a valid group name, so no principal could hold "
                        "it; it is left out of the document's access list. Rename the group at its source.",
                        group, path)
        return False
