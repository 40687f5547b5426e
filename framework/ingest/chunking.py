"""Split documents into chunks the embedder sees whole, along the document's structure.

all-MiniLM-L6-v2 truncates at 256 word pieces: text past that is invisible to
retrieval, so chunks are measured with the embedder's own tokenizer. The default is
11/16 of the window (176 tokens for MiniLM): in a sweep from 96 to 192 tokens on both
shared document sets it had the best hit@2 on both and met both hit@5 targets
(docs/performance.md); it leaves room for the title line, and three retrieved chunks
stay short enough for a 135M-parameter generator to use.

Structure first, size second: a document is cut at Markdown headings (HTML headings
arrive as Markdown ones), so a chunk never straddles two sections. Each chunk knows its
section path ("Benefits > Dental"), and the path is part of what is embedded, because a
paragraph under "Dental" rarely says "dental" itself. Sections too small to stand alone
are merged with their neighbours.

A page break (the form feed the files connector puts between PDF pages) is not a cut:
prose runs on across pages, and a sentence split at the bottom of page 10 would lose
half its meaning. A chunk records the page it starts on (`page`, the one its link opens)
and the page it ends on (`page_end`), so it counts as coming from every page it covers.

Example:
    >>> from framework.retrieval.embedder import HashingEmbedder
    >>> splitter = make_splitter(HashingEmbedder(), chunk_size=None, chunk_overlap=8)
    >>> splitter.chunk_size
    176
    >>> [(s.path, s.page) for s in split_sections("# Leave\\nTake 28 days.\\n## Sick\\nCall in.")]
    [('Leave', None), ('Leave > Sick', None)]
    >>> [(s.text, s.page, s.page_end) for s in split_sections("Claims are paid\\fwithin 30 days.")]
    [('Claims are paid\\nwithin 30 days.', 1, 2)]
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import re
from dataclasses import dataclass

from llama_index.core import Document as LlamaDocument
from llama_index.core.node_parser import MarkdownNodeParser, SentenceSplitter

from framework.ingest.protocols import Embedder
from framework.records import Chunk, Document

log = logging.getLogger(__name__)

# Room for the title and section line that is embedded with every chunk.
_TITLE_MARGIN = 24
PAGE_BREAK = "\f"
# Raise when a change to this module moves chunk boundaries: indexes built before re-chunk on the next ingest.
CHUNKER_VERSION = 2
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path; `page` is where it starts (None: the document has
    no pages) and `page_starts` the (offset in text, page) of each later page it runs onto."""

    path: str
    page: int | None
    text: str
    page_starts: tuple[tuple[int, int], ...] = ()

    @property
    def page_end(self) -> int | None:
        return self.page_starts[-1][1] if self.page_starts else self.page

    def page_at(self, offset: int) -> int | None:
        """The page the character at `offset` is on."""
        i = bisect.bisect_right([o for o, _ in self.page_starts], offset)
        return self.page_starts[i - 1][1] if i else self.page

    def joined(self, other: "Section", sep: str, path: str) -> "Section":
        """This section followed by `other`, page offsets carried over."""
        base = len(self.text) + len(sep)
        starts = list(self.page_starts)
        if other.page is not None and other.page != self.page_end:
            starts.append((base, other.page))
        starts.extend((base + o, p) for o, p in other.page_starts)
        return Section(path=path, page=self.page, text=f"{self.text}{sep}{other.text}", page_starts=tuple(starts))


def make_splitter(embedder: Embedder, *, chunk_size: int | None, chunk_overlap: int) -> SentenceSplitter:
    limit = embedder.max_tokens - _TITLE_MARGIN
    size = chunk_size if chunk_size is not None else embedder.max_tokens * 11 // 16
    if size > limit:
        log.warning("index.chunk_size=%d exceeds what %s reads (%d tokens); using %d",
                    size, embedder.name, embedder.max_tokens, limit)
        size = limit
    overlap = min(chunk_overlap, size // 4)
    if overlap != chunk_overlap:
        log.warning("index.chunk_overlap=%d is too large for chunk_size=%d; using %d", chunk_overlap, size, overlap)
    return SentenceSplitter(chunk_size=size, chunk_overlap=overlap, tokenizer=embedder.tokenize)


def chunk_layout(splitter: SentenceSplitter) -> str:
    """Names how documents are cut; the ingest ledger re-chunks a document when this changes."""
    return f"chunker{CHUNKER_VERSION}-{splitter.chunk_size}-{splitter.chunk_overlap}"


def chunk_id(doc_id: str, position: int, text: str) -> str:
    """Stable id: the same text at the same place in the same document gets the same id."""
    doc = hashlib.sha256(doc_id.encode()).hexdigest()[:16]
    body = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{doc}-{position:04d}-{body}"


def split_sections(text: str) -> list[Section]:
    """Cut at Markdown headings (code fences respected by the parser); text that carries on
    over a page break without a heading of its own stays in the section it continues."""
    pages = text.split(PAGE_BREAK)
    numbered = len(pages) > 1
    parser = MarkdownNodeParser(include_metadata=True, include_prev_next_rel=False)
    sections: list[Section] = []
    for number, page in enumerate(pages, start=1):
        if not page.strip():
            continue
        nodes = parser.get_nodes_from_documents([LlamaDocument(text=page)]) if "#" in page else []
        if not nodes:
            sections.append(Section(path="", page=number if numbered else None, text=page.strip()))
            continue
        for node in nodes:
            parents = [p for p in node.metadata.get("header_path", "/").split("/") if p]
            first = node.text.lstrip().split("\n", 1)[0]
            heading = _HEADING.match(first)
            path = " > ".join(parents + ([heading.group(1)] if heading else []))
            if node.text.strip():
                sections.append(Section(path=path, page=number if numbered else None, text=node.text.strip()))
    return _flow_across_pages(sections)


def _flow_across_pages(sections: list[Section]) -> list[Section]:
    flowed: list[Section] = []
    for sec in sections:
        prev = flowed[-1] if flowed else None
        continues = (prev is not None and sec.page is not None and sec.page != prev.page_end
                     and not _HEADING.match(sec.text.split("\n", 1)[0]))
        if continues:
            flowed[-1] = prev.joined(sec, "\n", prev.path)
        else:
            flowed.append(sec)
    return flowed


def _merge_small(sections: list[Section], splitter: SentenceSplitter) -> list[Section]:
    """Join neighbouring sections while they fit in one chunk together."""
    merged: list[Section] = []
    sizes: list[int] = []
    for sec in sections:
        size = len(splitter._tokenizer(sec.text))
        if merged and sizes[-1] + size <= splitter.chunk_size:
            prev = merged[-1]
            # A heading with no text of its own hands the path on to what follows it.
            only_headings = all(_HEADING.match(line) for line in prev.text.splitlines() if line.strip())
            path = sec.path if only_headings or not prev.path else prev.path
            merged[-1] = prev.joined(sec, "\n\n", path)
            sizes[-1] += size
        else:
            merged.append(sec)
            sizes.append(size)
    return merged


def chunk_document(doc: Document, splitter: SentenceSplitter) -> list[Chunk]:
    pieces: list[tuple[Section, str, int | None, int | None]] = []
    for sec in _merge_small(split_sections(doc.text), splitter):
        cursor = 0
        for text in (t.strip() for t in splitter.split_text(sec.text)):
            if not text:
                continue
            # The splitter returns substrings of the section; find each one's place for its pages.
            at = sec.text.find(text, cursor)
            if at < 0:
                at = max(sec.text.find(text), 0)
            cursor = at + 1
            pieces.append((sec, text, sec.page_at(at), sec.page_at(at + len(text) - 1)))
    return [
        Chunk(id=chunk_id(doc.id, i, text), doc_id=doc.id, position=i, text=text, title=doc.title,
              uri=doc.uri, source=doc.source, doc_hash=doc.content_hash, acl=doc.acl,
              section=sec.path, page=page, page_end=end if end != page else None)
        for i, (sec, text, page, end) in enumerate(pieces)
    ]


def embedding_text(title: str, text: str, section: str = "") -> str:
    """What the embedder (and BM25) reads: title and section give a chunk the context its text may lack."""
    heading = f"{title} > {section}" if section and section != title else title
    return f"{heading}\n{text}"
