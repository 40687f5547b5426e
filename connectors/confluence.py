"""Confluence connector: a space's HTML export, as the zip Confluence produces or unzipped.

Reads: `index.html` (the space overview, skipped) and one `<Title>_<page id>.html` per page,
each with its breadcrumbs (`div#breadcrumb-section`), title (`span#title-text`), author line
(`div.page-metadata`) and body (`div#main-content`), plus `attachments/<page id>/<file>`.
One document per page: the title is the breadcrumb path, `Space / Parent / Page`, so every
chunk is embedded with its place in the space; the text is the body followed by the text of
each attachment the files connector can parse (pdf, docx, txt, md, html).
Document id: `<source name>:<page id>`, stable across exports of the same space.
ACL: the HTML export carries no permissions, so every page gets the source's groups plus
those of each `acl_paths` pattern matching its breadcrumb path (`Space/Parent/Page`).
Unsafe or oversized zip entries are reported (see connectors.archive); a page that cannot
be read is reported and the others are indexed.

Example:
    >>> conn = ConfluenceConnector(name="eng", path="ENG-export.zip", acl=("engineering",))  # doctest: +SKIP
    >>> docs = [item.read() for item in conn.scan() if hasattr(item, "read")]                # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Iterator, Literal, Union

from pydantic import Field

from connectors.archive import ArchiveLimits, Export, ExportSource, export_root
from connectors.files import SUPPORTED, decode_text, parse_file
from connectors.formats import check_html_depth
from framework.ingest.acl import AclPolicy
from framework.ingest.contract import LoadFailure, SourceItem
from framework.records import Document


class ConfluenceSource(ExportSource):
    """A Confluence space HTML export (folder or zip)."""

    type: Literal["confluence"]
    base_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    attachments: bool = True

log = logging.getLogger(__name__)

_PAGE_ID = re.compile(r"(?:^|_)(\d+)\.html$")


class ConfluenceConnector:
    schema = ConfluenceSource

    @classmethod
    def from_config(cls, cfg: ConfluenceSource) -> "ConfluenceConnector":
        """Build from the validated `sources:` entry (see docs/connectors/confluence.md)."""
        return cls(name=cfg.name, path=cfg.path, acl=AclPolicy.from_config(cfg),
                   limits=ArchiveLimits.from_config(cfg), base_url=cfg.base_url, attachments=cfg.attachments)

    def __init__(self, *, name: str, path: str | Path, acl: AclPolicy | tuple[str, ...] = (),
                 limits: ArchiveLimits = ArchiveLimits(), base_url: str | None = None,
                 attachments: bool = True) -> None:
        self.name = name
        self.path = Path(path).expanduser()
        self.acl = acl if isinstance(acl, AclPolicy) else AclPolicy(groups=tuple(acl))
        self.limits = limits
        self.base_url = base_url.rstrip("/") if base_url else None
        self.attachments = attachments

    def scan(self) -> Iterator[Union[SourceItem, LoadFailure]]:
        export = Export.open(self.path, limits=self.limits, key=f"sources.{self.name}.path")
        names = export.names
        root = export_root(names, "index.html") or ""
        # a refused page (over a limit, encrypted) keeps its indexed version; a refused index.html, which
        # locates the pages, keeps every document of the source (see LoadFailure)
        known = self._acl_without_page()
        yield from export.failures_for(lambda name: (self._page_doc_id(name, root), None, known)
                                       if PurePosixPath(name).name != "index.html" else (None, f"{self.name}:", known))
        files_of: dict[str, list[str]] = {}
        for n in names:
            parts = PurePosixPath(n[len(root):]).parts if n.startswith(root) else ()
            if len(parts) >= 3 and parts[0] == "attachments":
                files_of.setdefault(parts[1], []).append(n)
        for page in names:
            rel = page[len(root):]
            if not page.startswith(root) or "/" in rel or not rel.endswith(".html") or rel == "index.html":
                continue
            yield from self._item(export, page, files_of)

    def _page_doc_id(self, name: str, root: str) -> str | None:
        """The document id of a page entry (`<root><title>_<id>.html`); None for anything else."""
        rel = name[len(root):] if name.startswith(root) else None
        if not rel or "/" in rel or not rel.endswith(".html") or rel == "index.html":
            return None
        match = _PAGE_ID.search(PurePosixPath(name).name)
        return f"{self.name}:{match.group(1) if match else PurePosixPath(name).stem}"

    def _acl_without_page(self) -> tuple[str, ...] | None:
        """Every page's ACL when no `acl_paths` pattern needs its breadcrumbs; None (unknown) otherwise."""
        return None if self.acl.by_path else self.acl.for_path("")

    def _item(self, export: Export, page: str, files_of: dict[str, list[str]]) -> Iterator[SourceItem | LoadFailure]:
        match = _PAGE_ID.search(PurePosixPath(page).name)
        page_id = match.group(1) if match else PurePosixPath(page).stem
        doc_id = f"{self.name}:{page_id}"
        raw = export.try_read(page, doc_id=doc_id, acl=self._acl_without_page())
        if isinstance(raw, LoadFailure):
            yield raw
            return
        digest = hashlib.sha256(page.encode() + b"\0" + hashlib.sha256(raw).digest())
        attached = []
        for entry in files_of.get(page_id, []) if self.attachments else []:
            data = export.try_read(entry)
            if isinstance(data, LoadFailure):
                yield data  # a damaged attachment is reported; its page is still indexed
                continue
            attached.append(entry)
            digest.update(entry.encode() + b"\0" + hashlib.sha256(data).digest())
        try:
            acl = self.acl.for_path("/".join(_header(raw)) if self.acl.by_path else "")
        except ValueError as err:  # not HTML (binary junk): its path, hence its groups, is unknown
            yield LoadFailure(uri=export.uri(page), reason=f"the page header cannot be read ({err}); export the "
                              "page again", doc_id=doc_id, acl=self._acl_without_page())
            return
        uri = f"{self.base_url}/pages/viewpage.action?pageId={page_id}" if self.base_url else export.uri(page)

        def read() -> Document:
            return _page_document(export, page, attached, id=doc_id, source=self.name, uri=uri,
                                  content_hash=digest.hexdigest(), acl=acl)

        yield SourceItem(doc_id=doc_id, uri=uri, content_hash=digest.hexdigest(), read=read, acl=acl)


def _soup(raw: bytes, **kw):
    """The page's tree; a page nested deeper than MAX_HTML_DEPTH is a ParseError, found before any tree is built."""
    from bs4 import BeautifulSoup

    text = decode_text(raw)
    check_html_depth(text)
    return BeautifulSoup(text, "html.parser", **kw)


def _header(raw: bytes) -> list[str]:
    """Breadcrumbs then title, read from the page header only (for `acl_paths` at scan time)."""
    from bs4 import SoupStrainer

    soup = _soup(raw, parse_only=SoupStrainer(["div", "span", "title"]))
    return [*_breadcrumbs(soup), _title(soup)]


def _breadcrumbs(soup) -> list[str]:
    section = soup.find(id="breadcrumb-section") or soup.find(id="breadcrumbs")
    if section is None:
        return []
    return [t for li in section.find_all("li") if (t := li.get_text(" ", strip=True))]


def _title(soup) -> str:
    tag = soup.find(id="title-text") or soup.title
    text = tag.get_text(" ", strip=True) if tag else ""
    return re.sub(r"^.*? : ", "", text, count=1) or "untitled"


def _page_document(export: Export, page: str, attached: list[str], **fields) -> Document:
    soup = _soup(export.read(page))
    title, crumbs = _title(soup), _breadcrumbs(soup)
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    text = _block_text(soup.find(id="main-content") or soup.body or soup)
    author, editor, day = _byline(soup)
    meta = {"page_title": title, "breadcrumbs": " / ".join(crumbs), "path": page}
    meta.update({k: v for k, v in (("author", author), ("last_modified_by", editor)) if v})
    names = _attachment_names(soup)
    parts, skipped = [text], []
    for entry in attached:
        shown = names.get(PurePosixPath(entry).name, PurePosixPath(entry).name)
        extracted = _attachment_text(export, entry, shown)
        if isinstance(extracted, str):
            parts.append(f"Attachment {shown}:\n{extracted}")
        else:
            skipped.append(f"{shown}: {extracted[0]}")
    meta["attachments"] = ", ".join(names.get(PurePosixPath(e).name, PurePosixPath(e).name) for e in attached)
    if skipped:
        meta["attachments_skipped"] = "; ".join(skipped)
    full_title = " / ".join([*crumbs, title])
    return Document(text="\n\n".join(p for p in parts if p), title=full_title,
                    updated_at=day or export.modified(page), metadata=meta, **fields)


_BLOCKS = ("p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "pre", "blockquote", "table", "br")


def _block_text(node) -> str:
    """Text with a line per block and `|` between table cells; inline tags stay inline."""
    for cell in node.find_all(["td", "th"]):
        cell.append(" | ")
    for block in node.find_all(_BLOCKS):
        block.append("\n")
    lines = [re.sub(r"[\s\u00a0]+", " ", line).strip(" |") for line in node.get_text().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line for line in lines if line)).strip()


def _byline(soup) -> tuple[str | None, str | None, str | None]:
    """Creator, last editor and the date of the last change from `div.page-metadata`."""
    box = soup.find(class_="page-metadata")
    if box is None:
        return None, None, None
    author, editor = box.find(class_="author"), box.find(class_="editor")
    found = re.search(r"on ([A-Z][a-z]{2} \d{1,2}, \d{4})", box.get_text(" ", strip=True))
    day = None
    if found:
        try:
            day = datetime.strptime(found.group(1), "%b %d, %Y").date().isoformat()
        except ValueError:
            day = None
    return (author.get_text(strip=True) if author else None, editor.get_text(strip=True) if editor else None, day)


def _attachment_names(soup) -> dict[str, str]:
    """Stored file name -> the name people gave the attachment, from the page's attachment list."""
    names = {}
    for a in soup.find_all("a", href=True):
        if a["href"].startswith("attachments/"):
            names[PurePosixPath(a["href"]).name] = a.get_text(strip=True) or PurePosixPath(a["href"]).name
    return names


def _attachment_text(export: Export, entry: str, shown: str) -> str | tuple[str]:
    """The attachment's text, or a one-element tuple with the reason it was left out."""
    suffix = PurePosixPath(entry).suffix.lower() or PurePosixPath(shown).suffix.lower()
    if suffix not in SUPPORTED:
        return (f"{suffix or 'no extension'} is not a text format",)
    try:
        raw = export.read(entry)
        with tempfile.TemporaryDirectory(prefix="ragtune-att-") as tmp:
            path = Path(tmp) / f"attachment{suffix}"
            path.write_bytes(raw)
            return parse_file(path, raw)[1]
    except Exception as err:  # an attachment's parser may raise anything; the page is still indexed
        log.warning("attachment %s left out: %s", entry, err)
        return (f"{type(err).__name__}: {err}",)
