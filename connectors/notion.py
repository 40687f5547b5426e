"""Notion connector: a workspace or page export in the "Markdown & CSV" format (zip or folder).

Reads: pages as `Title <32-hex id>.md`, with sub-pages in a folder `Title <id>/` beside the
file; databases as `Name <id>.csv` (or `Name <id>_all.csv`, preferred when both exist) with
their rows' pages in the folder `Name <id>/`.
Documents: one per page, titled with its hierarchy (`Wiki / Engineering / Code review`) so
every chunk is embedded with its place; one per database row, whose text is the row's
columns as `Column: value` lines followed by the body of the row's page when it has one.
Ids are stripped from every title.
Document id: `<source name>:<Notion id>` (the page's, or the row page's); a row without a page
gets `<source name>:<database id>:<hash of its title>`. Stable across exports.
ACL: the export carries no permissions, so every document gets the source's groups plus those
of each `acl_paths` pattern matching its title path (`Wiki/Engineering/Code review`).
Unsafe or oversized zip entries are reported (see connectors.archive); an unreadable page or
database is reported and the rest is indexed. A download that wraps the export in further
zips (`Export-...-Part-1.zip`) must be unzipped once first.

Example:
    >>> conn = NotionConnector(name="wiki", path="Export-2f1c.zip", acl=("staff",))  # doctest: +SKIP
    >>> docs = [item.read() for item in conn.scan() if hasattr(item, "read")]          # doctest: +SKIP
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Iterator, Literal, Union

from connectors.archive import ArchiveLimits, Export, ExportSource
from connectors.files import decode_text
from framework.ingest.acl import AclPolicy
from framework.ingest.contract import LoadFailure, SourceItem
from framework.records import Document


class NotionSource(ExportSource):
    """A Notion "Markdown & CSV" export (folder or zip)."""

    type: Literal["notion"]

_NAMED = re.compile(r"^(?P<title>.*?)\s*(?P<id>[0-9a-fA-F]{32})(?P<all>_all)?$")


@dataclass(frozen=True)
class _Entry:
    """One exported page or database: where it is and what it is called."""

    name: str
    notion_id: str | None
    titles: tuple[str, ...]

    @property
    def path(self) -> str:
        return "/".join(self.titles)


def _split(stem: str) -> tuple[str, str | None]:
    """`'Travel policy 1a2b...'` -> ('Travel policy', '1a2b...'); names without an id stay whole."""
    m = _NAMED.match(stem)
    return (m.group("title").strip() or m.group("id"), m.group("id").lower()) if m else (stem, None)


def _entry(name: str) -> _Entry:
    p = PurePosixPath(name)
    folders = [_split(part)[0] for part in p.parts[:-1]]
    title, notion_id = _split(p.stem)
    return _Entry(name=name, notion_id=notion_id, titles=(*folders, title))


class NotionConnector:
    schema = NotionSource

    @classmethod
    def from_config(cls, cfg: NotionSource) -> "NotionConnector":
        """Build from the validated `sources:` entry (see docs/connectors/notion.md)."""
        return cls(name=cfg.name, path=cfg.path, acl=AclPolicy.from_config(cfg),
                   limits=ArchiveLimits.from_config(cfg))

    def __init__(self, *, name: str, path: str | Path, acl: AclPolicy | tuple[str, ...] = (),
                 limits: ArchiveLimits = ArchiveLimits()) -> None:
        self.name = name
        self.path = Path(path).expanduser()
        self.acl = acl if isinstance(acl, AclPolicy) else AclPolicy(groups=tuple(acl))
        self.limits = limits

    def scan(self) -> Iterator[Union[SourceItem, LoadFailure]]:
        export = Export.open(self.path, limits=self.limits, key=f"sources.{self.name}.path")
        yield from export.failures_for(self._kept)  # a refused page or database keeps its indexed documents
        databases = _databases([n for n in export.names if n.lower().endswith(".csv")])
        pages_in: dict[str, list[str]] = {}
        for n in export.names:
            if n.lower().endswith(".md"):
                pages_in.setdefault(str(PurePosixPath(n).parent), []).append(n)
        row_pages: set[str] = set()
        for csv_name in databases.values():
            yield from self._rows(export, csv_name, pages_in, row_pages)
        for name in export.names:
            if name.lower().endswith(".md") and name not in row_pages:
                yield self._page(export, _entry(name))

    def _kept(self, name: str) -> tuple[str | None, str | None, tuple[str, ...] | None]:
        """(doc id, id prefix, ACL) of what an entry holds: a page is one document (its ACL follows from its
        title path), a database CSV its rows (their ACLs need the rows: unknown)."""
        if name.lower().endswith(".md"):
            entry = _entry(name)
            return self._page_id(entry), None, self.acl.for_path(entry.path)
        if name.lower().endswith(".csv"):
            return None, self._row_prefix(_entry(name)) + ":", None
        return None, None, None

    def _page_id(self, entry: _Entry) -> str:
        return f"{self.name}:{entry.notion_id or entry.name}"

    def _row_prefix(self, db: _Entry) -> str:
        """The id prefix of a database's rows that have no page of their own."""
        return f"{self.name}:{db.notion_id or db.name}"

    def _page(self, export: Export, entry: _Entry) -> SourceItem | LoadFailure:
        doc_id = self._page_id(entry)
        acl = self.acl.for_path(entry.path)
        raw = export.try_read(entry.name, doc_id=doc_id, acl=acl)
        if isinstance(raw, LoadFailure):
            return raw
        uri = f"https://www.notion.so/{entry.notion_id}" if entry.notion_id else export.uri(entry.name)
        digest = hashlib.sha256(raw).hexdigest()

        def read() -> Document:
            title, body = _markdown(decode_text(export.read(entry.name)))
            titles = (*entry.titles[:-1], title or entry.titles[-1])
            return Document(id=doc_id, text=body, source=self.name, uri=uri, title=" / ".join(titles),
                            content_hash=digest, acl=acl, updated_at=export.modified(entry.name),
                            metadata={"path": " / ".join(titles), "notion_id": entry.notion_id or "",
                                      "file": entry.name})

        return SourceItem(doc_id=doc_id, uri=uri, content_hash=digest, read=read, acl=acl)

    def _rows(self, export: Export, csv_name: str, pages_in: dict[str, list[str]],
              row_pages: set[str]) -> Iterator[SourceItem | LoadFailure]:
        db = _entry(csv_name)
        raw = export.try_read(csv_name)
        if isinstance(raw, LoadFailure):  # its rows without a page of their own stay as indexed
            yield replace(raw, keep_prefix=self._row_prefix(db) + ":")
            return
        try:
            rows = list(csv.reader(io.StringIO(decode_text(raw))))
        except (csv.Error, ValueError) as err:
            yield LoadFailure(uri=export.uri(csv_name), reason=f"the database CSV cannot be read ({err}); export "
                              "the database again", keep_prefix=self._row_prefix(db) + ":")
            return
        if not rows:
            return
        header, seen = rows[0], {}
        folder = str(PurePosixPath(csv_name).with_name(PurePosixPath(csv_name).stem.removesuffix("_all")))
        pages: dict[str, list[str]] = {}
        for name in pages_in.get(folder, []):
            pages.setdefault(_split(PurePosixPath(name).stem)[0], []).append(name)
        for values in rows[1:]:
            if not any(v.strip() for v in values):
                continue
            row = dict(zip(header, values))
            title = values[0].strip() if values else ""
            seen[title] = seen.get(title, 0) + 1
            candidates = pages.get(title, [])
            page_name = candidates[seen[title] - 1] if len(candidates) >= seen[title] else None
            if page_name:
                row_pages.add(page_name)
            yield self._row(export, db, row, title, seen[title], page_name)

    def _row(self, export: Export, db: _Entry, row: dict, title: str, occurrence: int,
             page_name: str | None) -> SourceItem | LoadFailure:
        page = _entry(page_name) if page_name else None
        if page and page.notion_id:
            doc_id, uri = f"{self.name}:{page.notion_id}", f"https://www.notion.so/{page.notion_id}"
        else:
            key = hashlib.sha256(f"{title}\0{occurrence}".encode()).hexdigest()[:16]
            doc_id, uri = f"{self._row_prefix(db)}:{key}", export.uri(db.name)
        titles = (*db.titles, title or "untitled row")
        acl = self.acl.for_path("/".join(titles))
        page_raw = export.try_read(page_name, doc_id=doc_id, acl=acl) if page_name else b""
        if isinstance(page_raw, LoadFailure):
            return page_raw
        digest = hashlib.sha256(json.dumps(row, sort_keys=True).encode() + b"\0" + page_raw).hexdigest()

        def read() -> Document:
            lines = [f"{k}: {v}" for k, v in row.items() if k.strip() and v.strip()]
            body = _row_body(decode_text(export.read(page_name)), set(row)) if page_name else ""
            return Document(id=doc_id, text="\n".join(lines) + (f"\n\n{body}" if body else ""), source=self.name,
                            uri=uri, title=" / ".join(titles), content_hash=digest, acl=acl,
                            updated_at=export.modified(page_name or db.name),
                            metadata={"path": " / ".join(titles), "database": " / ".join(db.titles),
                                      "notion_id": page.notion_id if page and page.notion_id else ""})

        return SourceItem(doc_id=doc_id, uri=uri, content_hash=digest, read=read, acl=acl)


def _databases(csv_names: list[str]) -> dict[str, str]:
    """Database key -> its CSV, preferring `Name <id>_all.csv` (every row) over the view's CSV."""
    chosen: dict[str, str] = {}
    for name in sorted(csv_names):
        stem = PurePosixPath(name).stem
        key = str(PurePosixPath(name).with_name(stem.removesuffix("_all")))
        if key not in chosen or stem.endswith("_all"):
            chosen[key] = name
    return chosen


_LOCAL_LINK = re.compile(r"\[([^\]]*)\]\((?![a-z]+:)[^)]*\)")


def _markdown(text: str) -> tuple[str | None, str]:
    """The page's `# Title` line and the rest of its Markdown, links to other exported files as plain text."""
    text = _LOCAL_LINK.sub(r"\1", text)
    m = re.match(r"\s*#\s+(.+?)\s*(?:\n|$)", text)
    return (m.group(1), text[m.end():].strip()) if m else (None, text.strip())


def _row_body(text: str, columns: set[str]) -> str:
    """A row page without its title and the `Column: value` lines the CSV already gave."""
    body = _markdown(text)[1].splitlines()
    while body and (not body[0].strip() or body[0].split(":", 1)[0].strip() in columns):
        body.pop(0)
    return "\n".join(body).strip()
