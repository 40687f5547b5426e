"""Files connector: a folder tree of txt, md, rst, html, pdf and docx files.

Reads: any folder; `include`/`exclude` are glob patterns relative to it.
Document id: `<source name>:<relative posix path>`, stable across runs and machines.
ACL: every file gets the source's groups (`acl:`, `public: true`) plus those of each matching
`acl_paths:` pattern (see framework.acl).
Bad files (empty, binary junk, oversized, unparseable) are reported, never fatal, and
symbolic links are never followed out of the folder.

Example:
    >>> conn = FilesConnector(name="handbook", root="docs/", acl=("hr",))  # doctest: +SKIP
    >>> docs = [item.read() for item in conn.scan() if hasattr(item, "read")]  # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Union

from framework.acl import AclPolicy
from framework.connector import LoadFailure, SourceItem
from framework.records import Document

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}


class ParseError(ValueError):
    """The file exists but holds no usable text."""


class FilesConnector:
    def __init__(self, *, name: str, root: str | Path, include: tuple[str, ...] = ("**/*",),
                 exclude: tuple[str, ...] = (), acl: AclPolicy | tuple[str, ...] = (), max_bytes: int = 50 * 2**20) -> None:
        self.name = name
        self.root = Path(root).expanduser()
        self.include = include
        self.exclude = exclude
        self.acl = acl if isinstance(acl, AclPolicy) else AclPolicy(groups=tuple(acl))
        self.max_bytes = max_bytes

    def scan(self) -> Iterator[Union[SourceItem, LoadFailure]]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"sources.{self.name}.path: folder {self.root} does not exist")
        root = self.root.resolve()
        for path in sorted(self._walk(root)):
            rel = path.relative_to(root).as_posix()
            if not self._selected(rel) or path.suffix.lower() not in SUPPORTED:
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                yield LoadFailure(uri=path.as_uri(), reason="symbolic link points outside the source folder; skipped")
                continue
            yield from self._item(path, rel)

    def _walk(self, root: Path) -> Iterator[Path]:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for f in filenames:
                if not f.startswith("."):
                    yield Path(dirpath) / f

    def _selected(self, rel: str) -> bool:
        def match(pattern: str) -> bool:
            return fnmatch.fnmatch(rel, pattern) or (pattern.startswith("**/") and fnmatch.fnmatch(rel, pattern[3:]))

        return any(match(p) for p in self.include) and not any(match(p) for p in self.exclude)

    def _item(self, path: Path, rel: str) -> Iterator[Union[SourceItem, LoadFailure]]:
        uri = path.as_uri()
        try:
            size = path.stat().st_size
            if size == 0:
                yield LoadFailure(uri=uri, reason="empty file")
                return
            if size > self.max_bytes:
                yield LoadFailure(uri=uri, reason=f"{size} bytes is over the source's max_file_mb limit",
                                  doc_id=f"{self.name}:{rel}")
                return
            raw = path.read_bytes()
        except OSError as err:
            yield LoadFailure(uri=uri, reason=f"cannot read: {err.strerror or err}", doc_id=f"{self.name}:{rel}")
            return
        digest = hashlib.sha256(raw).hexdigest()
        mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).isoformat(timespec="seconds")

        acl = self.acl.for_path(rel)

        def read() -> Document:
            title, text = parse_file(path, raw)
            return Document(id=f"{self.name}:{rel}", text=text, source=self.name, uri=uri, title=title,
                            content_hash=digest, acl=acl, updated_at=mtime, metadata={"path": rel})

        yield SourceItem(doc_id=f"{self.name}:{rel}", uri=uri, content_hash=digest, read=read, acl=acl)


def parse_file(path: Path, raw: bytes) -> tuple[str, str]:
    """Return (title, text) for one file; raise ParseError when it holds no text."""
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        text = decode_text(raw)
        title = _markdown_title(text) or path.stem
    elif suffix in HTML_SUFFIXES:
        title, text = _html_text(decode_text(raw))
        title = title or path.stem
    elif suffix == ".pdf":
        text = _llama_reader_text("PDFReader", path)
        title = path.stem
    elif suffix == ".docx":
        text = _llama_reader_text("DocxReader", path)
        title = path.stem
    else:
        raise ParseError(f"unsupported file type {suffix}")
    text = re.sub(r"[ \t]+\n", "\n", text).strip()
    text = re.sub(r"\f\s*(?=\f)", "", text)  # blank pages
    if not text:
        raise ParseError("no text could be extracted (scanned or empty document?)")
    return title, text


def decode_text(raw: bytes) -> str:
    """UTF-8 first, then the encoding charset-normalizer detects; binary junk is refused."""
    if b"\x00" in raw[:8192]:
        raise ParseError("binary content in a text file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is None:
        raise ParseError("not text in any known encoding")
    return str(best)


def _markdown_title(text: str) -> str | None:
    m = re.search(r"^#\s+(.+)$", text, flags=re.MULTILINE)
    return m.group(1).strip() if m else None


def _html_text(html: str) -> tuple[str | None, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    for level in range(1, 7):  # headings become Markdown ones, so chunks know their section
        for tag in soup.find_all(f"h{level}"):
            tag.replace_with(f"\n{'#' * level} {tag.get_text(' ', strip=True)}\n")
    title = soup.title.get_text(strip=True) if soup.title else None
    body = soup.body or soup  # the <title> is returned as the title, not repeated in the text
    return title, body.get_text("\n")


def _llama_reader_text(reader: str, path: Path) -> str:
    from llama_index.readers.file import DocxReader, PDFReader

    cls = {"PDFReader": PDFReader, "DocxReader": DocxReader}[reader]
    try:
        docs = cls().load_data(file=path)
    except Exception as err:  # parsers raise many types for corrupt files; report, never abort
        raise ParseError(f"{reader} could not parse the file: {type(err).__name__}: {err}") from err
    # PDF pages are separated by form feeds, so chunks keep their page (see framework.chunking).
    return ("\f" if reader == "PDFReader" else "\n\n").join(d.text for d in docs)
