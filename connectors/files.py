"""Files connector: a folder tree of txt, md, rst, html, pdf, docx, pptx, csv, json and jsonl files.

Reads: any folder; `include`/`exclude` are glob patterns relative to it.
Document id: `<source name>:<relative posix path>`, stable across runs and machines.
ACL: every file gets the source's groups (`acl:`, `public: true`) plus those of each matching
`acl_paths:` pattern (see framework.ingest.acl).
Bad files (empty or without real text, binary junk, oversized, undecodable, corrupt or encrypted) are reported,
never fatal, and symbolic links are never followed out of the folder. A file that was indexed
and then turns bad (emptied by a cut-short save, corrupted) keeps its indexed chunks until it
parses again or is deleted: its failure carries its document id and its ACL as the config says
now, which the kept chunks are given. Scanning hashes each
file in blocks and keeps no content in memory; a file is read again only when it is parsed.

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
from typing import Iterator, Literal, Union

from pydantic import Field

from connectors.formats import (
    ParseError,
    csv_text,
    decode_text,
    docx_text,
    html_text,
    json_text,
    markdown_title,
    pdf_text,
    pptx_text,
)
from framework.ingest.acl import AclPolicy
from framework.ingest.contract import NO_REAL_TEXT, LoadFailure, SourceConfig, SourceItem, real_text
from framework.records import Document


class FilesSource(SourceConfig):
    """A folder tree of txt, md, html, pdf and docx files."""

    type: Literal["files"]
    path: str
    include: list[str] = ["**/*"]
    exclude: list[str] = []
    max_file_mb: float = Field(default=50.0, gt=0)

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx", ".pptx", ".csv", ".json", ".jsonl"}

__all__ = ["FilesConnector", "ParseError", "SUPPORTED", "decode_text", "parse_file"]


class FilesConnector:
    schema = FilesSource

    @classmethod
    def from_config(cls, cfg: FilesSource) -> "FilesConnector":
        """Build from the validated `sources:` entry (see docs/connectors/files.md)."""
        return cls(name=cfg.name, root=cfg.path, include=tuple(cfg.include), exclude=tuple(cfg.exclude),
                   acl=AclPolicy.from_config(cfg), max_bytes=int(cfg.max_file_mb * 1024 * 1024))

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
        uri, doc_id = path.as_uri(), f"{self.name}:{rel}"
        acl = self.acl.for_path(rel)  # known before reading: a file that fails keeps its chunks under this ACL
        try:
            stat = path.stat()
            if stat.st_size == 0:  # often a save or sync cut short: the last good version stays indexed
                yield LoadFailure(uri=uri, reason="the file is empty (0 bytes); if a save or sync was cut short, "
                                  "save it again, else delete it", doc_id=doc_id, acl=acl)
                return
            if stat.st_size > self.max_bytes:
                yield LoadFailure(uri=uri, reason=f"{stat.st_size} bytes is over the source's max_file_mb limit "
                                  f"({self.max_bytes} bytes); raise max_file_mb or exclude the file", doc_id=doc_id,
                                  acl=acl)
                return
            digest = _sha256(path)
        except OSError as err:
            yield LoadFailure(uri=uri, reason=f"cannot read: {err.strerror or err}", doc_id=doc_id, acl=acl)
            return
        mtime = datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc).isoformat(timespec="seconds")

        def read() -> Document:
            raw = path.read_bytes()
            if len(raw) > self.max_bytes:
                raise ParseError(f"grew to {len(raw)} bytes since the scan, over the max_file_mb limit "
                                 f"({self.max_bytes} bytes); raise max_file_mb or exclude the file")
            title, text = parse_file(path, raw)
            # A file edited since the scan keeps the hash of what was parsed; the next run sees it as changed.
            return Document(id=doc_id, text=text, source=self.name, uri=uri, title=title,
                            content_hash=hashlib.sha256(raw).hexdigest(), acl=acl, updated_at=mtime,
                            metadata={"path": rel})

        yield SourceItem(doc_id=doc_id, uri=uri, content_hash=digest, read=read, acl=acl)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_NO_VISIBLE = ("no visible text: the page holds only markup, scripts or styles, or was cut short; if a save or "
               "sync was cut short, save it again, else exclude it")
_NO_TEXT = {
    ".pdf": "no text layer: the PDF may hold scanned images; run OCR on it (e.g. ocrmypdf) or exclude it",
    ".html": _NO_VISIBLE,
    ".htm": _NO_VISIBLE,
    ".docx": "the document holds no text (images only?); exclude it if that is expected",
    ".pptx": "the slides hold no text (images only?); exclude it if that is expected",
    ".json": "no string values to index; exclude it if that is expected",
    ".jsonl": "no string values to index; exclude it if that is expected",
}


def parse_file(path: Path, raw: bytes) -> tuple[str, str]:
    """Return (title, text) for one file; raise ParseError when it holds no usable text.

    Example:
        >>> parse_file(Path("notes.md"), b"# Leave\\n\\n28 days a year.")
        ('Leave', '# Leave\\n\\n28 days a year.')
    """
    suffix = path.suffix.lower()
    title: str | None = None
    if suffix in TEXT_SUFFIXES:
        text = decode_text(raw)
        title = markdown_title(text)
    elif suffix in HTML_SUFFIXES:
        title, text = html_text(raw)
    elif suffix == ".pdf":
        title, text = pdf_text(raw)
    elif suffix == ".docx":
        title, text = docx_text(raw)
    elif suffix == ".pptx":
        title, text = pptx_text(raw)
    elif suffix == ".csv":
        text = csv_text(raw)
    elif suffix in (".json", ".jsonl"):
        title, text = json_text(raw, lines=suffix == ".jsonl")
    else:
        raise ParseError(f"unsupported file type {suffix}; supported: {', '.join(sorted(SUPPORTED))}")
    # Blank pages keep their form feed: dropping one would renumber every page after it.
    text = re.sub(r"[ \t]+\n", "\n", text).strip(" \t\r\n")
    if not real_text(text):
        raise ParseError(_NO_TEXT.get(suffix, NO_REAL_TEXT))
    return title or path.stem, text
