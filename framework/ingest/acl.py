"""Who may read a document: one policy object shared by every connector.

A source's config gives its groups (`acl:`), may mark it `public: true`, and may map path
patterns within it to more groups (`acl_paths:`). Exports that carry their own permissions
(a private Slack channel's members, say) pass them as `carried`. The result is the
document's `acl`; an empty one means nobody can read it, never everybody.

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

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Iterable

from framework.ingest.contract import SourceConfig

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

    @classmethod
    def from_config(cls, cfg: SourceConfig) -> "AclPolicy":
        """Build from any source config with `acl`, `public` and `acl_paths` keys."""
        return cls(groups=tuple(cfg.acl), public=bool(cfg.public),
                   by_path=tuple((pattern, tuple(groups)) for pattern, groups in cfg.acl_paths.items()))

    def for_path(self, path: str = "", carried: Iterable[str] = ()) -> tuple[str, ...]:
        """The sorted, de-duplicated groups that may read the document at `path`."""
        if self.public:
            return (PUBLIC,)
        groups = set(self.groups) | set(carried)
        for pattern, extra in self.by_path:
            if fnmatchcase(path, pattern):
                groups.update(extra)
        return tuple(sorted(groups))
