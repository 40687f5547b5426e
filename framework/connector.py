"""The Connector protocol: what every document source implements.

A connector lists its documents cheaply (`scan`), each with a stable id and a hash of
the raw bytes, and parses one only when asked (`SourceItem.read`). The ingest ledger
compares hashes first, so an unchanged document costs a hash and nothing more.

Example:
    >>> from connectors.files import FilesConnector
    >>> conn = FilesConnector(name="docs", root=".", acl=("public",))  # doctest: +SKIP
    >>> for item in conn.scan(): ...                                    # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, Union, runtime_checkable

from framework.records import Document


@dataclass(frozen=True)
class SourceItem:
    """A document found by a connector, not yet parsed."""

    doc_id: str
    uri: str
    content_hash: str
    read: Callable[[], Document]
    acl: tuple[str, ...] = ()

    @property
    def version(self) -> str:
        """What the ledger compares: the content and who may read it (an ACL change re-indexes)."""
        return f"{self.content_hash}:{','.join(sorted(self.acl))}"


@dataclass(frozen=True)
class LoadFailure:
    """A document that could not be read, with the reason the ingest report shows.

    With a `doc_id`, the document still exists (e.g. unreadable for now, or over the
    size limit) and its indexed chunks are kept; without one it is treated as gone.
    """

    uri: str
    reason: str
    doc_id: str | None = None


@runtime_checkable
class Connector(Protocol):
    name: str

    def scan(self) -> Iterator[Union[SourceItem, LoadFailure]]: ...
