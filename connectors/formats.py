"""Text extraction for one file format at a time: bytes in, (title, text) out.

Each parser uses the well-kept library for its format (pypdf, docx2txt, python-pptx,
BeautifulSoup, charset-normalizer, the standard csv and json modules) and turns every
way a file can be unreadable into a `ParseError` whose message the ingest report shows
as is: the cause once (the library's own words, without its exception class) and what to
do. The report puts the file's name in front. Titles are None where the format has none;
the caller falls back to the file name. Parsing is bounded: zips by their inflated size,
JSON by Python's recursion limit, HTML by its nesting depth (MAX_HTML_DEPTH) checked in one
streaming pass before a tree is built, and every file by `ingest.parse_timeout_s`.

Example:
    >>> csv_text(b"name,days\\nleave,28\\n")
    'name: leave; days: 28'
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from html.parser import HTMLParser

from framework.ingest.contract import DocumentError

# Office files are zip archives; refuse ones that inflate past this (zip bombs).
MAX_UNZIPPED_BYTES = 512 * 2**20
# Chromium stops nesting the DOM at 512 levels; deeper HTML is machine-made, and building its
# tree is what made a 95,000-level file take seconds.
MAX_HTML_DEPTH = 512

_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


class ParseError(DocumentError):
    """The file exists but holds no usable text; the message says why and what to do."""


def _cause(err: BaseException) -> str:
    """A library exception in its own words, without its class name (a KeyError says which key)."""
    text = " ".join(str(err).split())
    if isinstance(err, KeyError):
        return f"missing entry {text}"
    return text or type(err).__name__


def decode_text(raw: bytes) -> str:
    """UTF-8 first, a byte-order mark next, then what charset-normalizer detects; binary junk is refused."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom):].decode(encoding)
            except UnicodeDecodeError as err:
                raise ParseError(f"starts with a {encoding} byte-order mark but is not valid {encoding} "
                                 f"({err.reason} at byte {err.start}); save it again as UTF-8") from None
    if b"\x00" in raw[:8192]:
        raise ParseError("binary content in a text file (NUL bytes); exclude it or fix its extension")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(raw)
    best = matches.best()
    if best is None:
        raise ParseError("not text in any known encoding (binary junk?); exclude it or fix its extension")
    # Short western text often scores the same in several code pages; the most common one wins the tie.
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    return str(next((m for m in tied if m.encoding == "cp1252"), best))


def markdown_title(text: str) -> str | None:
    m = re.search(r"^#\s+(.+)$", text, flags=re.MULTILINE)
    return m.group(1).strip() if m else None


class _Depth(HTMLParser):
    """The deepest nesting of elements that need an end tag, without building a tree; stops at the limit."""

    # void elements and those whose end tag HTML lets authors leave out never count as nesting
    _FLAT = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr",
             "param", "keygen", "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "thead", "tbody",
             "tfoot", "colgroup", "caption", "rb", "rt", "rtc", "rp", "html", "head", "body"}

    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=False)
        self.limit, self.open, self.deepest = limit, [], 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag not in self._FLAT:
            self.open.append(tag)
            self.deepest = max(self.deepest, len(self.open))
            if self.deepest > self.limit:
                raise ParseError(f"HTML nests elements more than {self.limit} levels deep (browsers stop at 512); "
                                 "it is machine-made or broken: exclude it")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:  # a stray end tag closes nothing
            while self.open.pop() != tag:
                pass


def check_html_depth(text: str, limit: int = MAX_HTML_DEPTH) -> None:
    """Raise ParseError when HTML nests deeper than `limit`: one streaming pass, before any tree is built."""
    checker = _Depth(limit)
    checker.feed(text)
    checker.close()


def html_text(raw: bytes) -> tuple[str | None, str]:
    from bs4 import BeautifulSoup

    text = decode_text(raw)
    check_html_depth(text)
    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    for level in range(1, 7):  # headings become Markdown ones, so chunks know their section
        for tag in soup.find_all(f"h{level}"):
            tag.replace_with(f"\n{'#' * level} {tag.get_text(' ', strip=True)}\n")
    title = soup.title.get_text(strip=True) if soup.title else None
    body = soup.body or soup  # the <title> is returned as the title, not repeated in the text
    return title or None, body.get_text("\n")


def pdf_text(raw: bytes) -> tuple[str | None, str]:
    """Pages joined by form feeds, so chunks keep their page (framework.ingest.chunking); an encrypted PDF opens only when its user password is empty (no title)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not _decrypt_with_empty_password(reader):
            raise ParseError("encrypted PDF that needs a password; save a copy without a password, or exclude it")
        pages = [page.extract_text() or "" for page in reader.pages]
    except ParseError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError,
            RecursionError, NotImplementedError) as err:
        raise ParseError(f"not a readable PDF ({_cause(err)}); the file looks truncated or corrupt: export or "
                         "download it again, or exclude it") from None
    # Metadata titles are often an authoring tool's leftovers ("Microsoft Word - draft3"): the file name is better.
    return None, "\f".join(pages)


def _decrypt_with_empty_password(reader) -> bool:
    from pypdf.errors import DependencyError, PdfReadError

    try:
        return bool(reader.decrypt(""))
    except DependencyError as err:  # AES needs the optional `cryptography` package
        raise ParseError(f"encrypted PDF that pypdf cannot decrypt here ({_cause(err)}); save a copy without "
                         "encryption, or exclude it") from None
    except PdfReadError:
        return False


def _office_zip(raw: bytes, kind: str) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as err:
        raise ParseError(f"not a valid {kind} file ({_cause(err)}; a {kind} is a zip archive); it may be truncated "
                         "or misnamed: save it again, or exclude it") from None
    inflated = sum(info.file_size for info in archive.infolist())
    if inflated > MAX_UNZIPPED_BYTES:
        raise ParseError(f"{kind} inflates to {inflated} bytes, over the {MAX_UNZIPPED_BYTES} byte limit (a zip "
                         "bomb?); exclude it")
    return archive


def docx_text(raw: bytes) -> tuple[str | None, str]:
    import docx2txt

    archive = _office_zip(raw, "DOCX")
    if "word/document.xml" not in archive.namelist():
        raise ParseError("not a Word document (the zip has no word/document.xml); fix its extension or exclude it")
    try:
        return None, docx2txt.process(io.BytesIO(raw))
    except Exception as err:  # docx2txt raises XML and zip errors of many types on corrupt files
        raise ParseError(f"not a readable DOCX ({_cause(err)}); open it in Word and save it again, or exclude "
                         "it") from None


def pptx_text(raw: bytes) -> tuple[str | None, str]:
    """One block per slide: its title, text frames, table cells and notes; the first slide's title names the deck."""
    from pptx import Presentation

    _office_zip(raw, "PPTX")
    try:
        deck = Presentation(io.BytesIO(raw))
        slides = [_slide_text(n, slide) for n, slide in enumerate(deck.slides, 1)]
    except Exception as err:  # python-pptx raises XML, zip and key errors of many types on corrupt files
        raise ParseError(f"not a readable PPTX ({_cause(err)}); open it in PowerPoint and save it again, or "
                         "exclude it") from None
    first = slides[0].split("\n", 1)[0].split(": ", 1) if slides and slides[0] else []
    return (first[1] if len(first) == 2 else None), "\n\n".join(s for s in slides if s)


def _slide_text(number: int, slide) -> str:
    title_shape = slide.shapes.title
    heading = title_shape.text_frame.text.strip() if title_shape is not None and title_shape.has_text_frame else ""
    lines = [f"Slide {number}: {heading}" if heading else f"Slide {number}"]
    for shape in slide.shapes:
        if shape is title_shape:
            continue
        if shape.has_text_frame and shape.text_frame.text.strip():
            lines.append(shape.text_frame.text.strip())
        if getattr(shape, "has_table", False) and shape.has_table:
            lines.extend(" | ".join(cell.text.strip() for cell in row.cells) for row in shape.table.rows)
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        notes = slide.notes_slide.notes_text_frame.text.strip()
        if notes:
            lines.append(f"Notes: {notes}")
    return "\n".join(lines) if len(lines) > 1 else ""


def csv_text(raw: bytes) -> str:
    """One line per row, each value next to its column header: `header: value; ...`."""
    text = decode_text(raw)
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
    except csv.Error as err:
        raise ParseError(f"malformed CSV ({_cause(err)}); fix its quoting or exclude it") from None
    if not rows:
        return ""
    header = [h.strip() or f"column {i + 1}" for i, h in enumerate(rows[0])]
    lines = []
    for row in rows[1:]:
        pairs = [f"{header[i] if i < len(header) else f'column {i + 1}'}: {v.strip()}"
                 for i, v in enumerate(row) if v.strip()]
        lines.append("; ".join(pairs))
    return "\n".join(lines) if lines else "; ".join(header)


def json_text(raw: bytes, *, lines: bool) -> tuple[str | None, str]:
    """Every string value on its own line, after its key path (`owner.name: Ada`)."""
    text = decode_text(raw)
    if lines:
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                records.append(_load_json(line, f"line {number}"))
        value = records
    else:
        value = _load_json(text, "the file")
    title = value.get("title") or value.get("name") if isinstance(value, dict) else None
    return (title if isinstance(title, str) else None), "\n".join(f"{p}: {s}" if p else s
                                                                   for p, s in _strings(value))


def _load_json(text: str, where: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ParseError(f"{where} is not valid JSON ({_cause(err)}); fix it or exclude the file") from None
    except RecursionError:
        raise ParseError(f"{where} nests JSON too deeply to read; exclude the file") from None


def _strings(value) -> list[tuple[str, str]]:
    """(key path, string) pairs in document order, without recursion (deep nesting is not a crash)."""
    out, stack = [], [("", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if node.strip():
                out.append((path, node.strip()))
        elif isinstance(node, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(node))))
    return out
