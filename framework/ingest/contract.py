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

import re
import string
from dataclasses import dataclass
from typing import Annotated, Callable, Iterator, Protocol, Union, runtime_checkable

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from framework.records import Document, check_group

# A group name in config (source acl / acl_paths, router.groups, dataset.audience): the same rule
# as a Principal's groups (framework.records.GROUP_PATTERN), so config can name no group nobody may hold.
GroupName = Annotated[str, AfterValidator(check_group)]


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

    With a `doc_id`, the document still exists (empty or corrupt for now, unreadable, over the
    size limit) and its indexed chunks are kept until it reads again or is gone; without one it
    is treated as gone. `keep_prefix` keeps every indexed document whose id starts with it that
    the scan did not list: for a failure that hides documents it cannot name one by one (a Slack
    day file, a Notion database CSV). The reason says what is wrong and what to do; the ingest
    report puts the document's name in front of it, so it need not name the file.

    `acl` is who may read the document as the config says now, where the connector can tell
    without reading it (`AclPolicy.for_path` at scan time): the kept chunks are given it, so a
    narrowed ACL applies even to a document that fails to read. None: unknown (a failure hiding
    documents, or an ACL that depends on the unreadable content); such documents are kept only
    while the source's ACL config is unchanged since the last ingest, else they leave the index
    until they read again.
    """

    uri: str
    reason: str
    doc_id: str | None = None
    keep_prefix: str | None = None
    acl: tuple[str, ...] | None = None


class DocumentError(ValueError):
    """A document exists but holds no usable text; the message is the report's reason as is.

    Connectors raise it (or a subclass such as connectors.formats.ParseError) from `read()`
    with the cause and the fix, e.g. "not a valid DOCX (unbound prefix); re-save it in Word".
    Other exceptions are reported with their class name, since that is then part of the cause.
    """


# What is not text a reader could use: whole tags and comments, a tag cut off at either end ("<ht",
# "v>"), character references. Whatever is left must hold a letter or a digit (any script).
_MARKUP = re.compile(r"<!--.*?(-->|$)|<[^<>]*>|<[A-Za-z!/?][^<>\s]*$|^[^<>\s]*>|&#?\w+;", re.S)
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")
NO_REAL_TEXT = ("holds no real text (only whitespace or markup fragments); if a save or sync was cut short, "
                "save it again, else delete or exclude it")


def real_text(text: str) -> bool:
    """Whether a document's text holds anything to index: a letter or digit outside markup fragments.

    The one test for "empty", for every format and connector (framework.ingest.pipeline applies it to
    each parsed document): a file cut short to "<ht", emptied to blank lines, or left with only tags
    keeps its indexed version and is reported, rather than replacing it with nothing useful.

    Example:
        >>> [real_text(t) for t in ("<ht", "   ", "<p></p>", "# ", "28 days", "<p>Hi</p>")]
        [False, False, False, False, True, True]
    """
    if "<" not in text and "&" not in text:  # most documents: no markup to look past
        return bool(_LETTER_OR_DIGIT.search(text))
    return bool(_LETTER_OR_DIGIT.search(_MARKUP.sub(" ", text)))


@runtime_checkable
class Connector(Protocol):
    """A document source. A connector whose access rules come from config also exposes them as `acl`
    (an `AclPolicy`, as every shipped connector does), so ingest can tell when they change."""

    name: str

    def scan(self) -> Iterator[Union[SourceItem, LoadFailure]]: ...


class SourceConfig(BaseModel):
    """The keys every `sources:` entry has: a unique name, its type, and who may read its
    documents (see framework.ingest.acl). Each connector's schema extends it with its own
    keys and a `type: Literal[...]` naming it; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    type: str
    acl: list[GroupName] = []
    public: bool = False
    acl_paths: dict[str, list[GroupName]] = {}


def check_template(template: str | None, allowed: set[str] | None) -> None:
    """A str.format template must parse, and (when `allowed` is given) name only those fields."""
    if template is None:
        return
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        raise ValueError(f"template {template!r} is not a valid str.format template: {err}") from None
    for f in fields:
        if not f or f.isdigit():
            raise ValueError(f"template {template!r}: use named fields like {{title}}, not {{{f}}}")
        base = re.split(r"[.\[]", f, maxsplit=1)[0]
        if allowed is not None and base not in allowed:
            raise ValueError(f"template {template!r}: unknown field {{{base}}}; allowed: {sorted(allowed)}")
