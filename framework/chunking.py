"""Split documents into chunks the embedder sees whole, along the document's structure.

all-MiniLM-L6-v2 truncates at 256 word pieces: text past that is invisible to
retrieval, so chunks are measured with the embedder's own tokenizer. The default is
half the embedder's window, which keeps three retrieved chunks short enough for a
135M-parameter generator to use.

Structure first, size second: a document is cut at page breaks (form feeds, which the
files connector puts between PDF pages) and at Markdown headings (HTML headings arrive
as Markdown ones), so a chunk never straddles two pages or two sections. Each chunk
knows its section path ("Benefits > Dental") and page, and the path is part of what is
embedded, because a paragraph under "Dental" rarely says "dental" itself. Sections
too small to stand alone are merged with their neighbours on the same page.

Example:
    >>> from framework.embedder import HashingEmbedder
    >>> splitter = make_splitter(HashingEmbedder(), chunk_size=None, chunk_overlap=8)
    >>> splitter.chunk_size
    128
    >>> [(s.path, s.page) for s in split_sections("# Leave\\nTake 28 days.\\n## Sick\\nCall in.")]
    [('Leave', None), ('Leave > Sick', None)]
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from llama_index.core import Document as LlamaDocument
from llama_index.core.node_parser import MarkdownNodeParser, SentenceSplitter

from framework.embedder import Embedder
from framework.records import Chunk, Document

log = logging.getLogger(__name__)

# Room for the title and section line that is embedded with every chunk.
_TITLE_MARGIN = 24
PAGE_BREAK = "\f"
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path, on one page (None: the document has no pages)."""

    path: str
    page: int | None
    text: str


def make_splitter(embedder: Embedder, *, chunk_size: int | None, chunk_overlap: int) -> SentenceSplitter:
    limit = embedder.max_tokens - _TITLE_MARGIN
    size = chunk_size if chunk_size is not None else embedder.max_tokens // 2
    if size > limit:
        log.warning("index.chunk_size=%d exceeds what %s reads (%d tokens); using %d",
                    size, embedder.name, embedder.max_tokens, limit)
        size = limit
    overlap = min(chunk_overlap, size // 4)
    if overlap != chunk_overlap:
        log.warning("index.chunk_overlap=%d is too large for chunk_size=%d; using %d", chunk_overlap, size, overlap)
    return SentenceSplitter(chunk_size=size, chunk_overlap=overlap, tokenizer=embedder.tokenize)


def chunk_id(doc_id: str, position: int, text: str) -> str:
    """Stable id: the same text at the same place in the same document gets the same id."""
    doc = hashlib.sha256(doc_id.encode()).hexdigest()[:16]
    body = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{doc}-{position:04d}-{body}"


def split_sections(text: str) -> list[Section]:
    """Cut at page breaks, then at Markdown headings (code fences respected by the parser)."""
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
    return sections


def _merge_small(sections: list[Section], splitter: SentenceSplitter) -> list[Section]:
    """Join neighbouring sections on the same page while they fit in one chunk together."""
    merged: list[Section] = []
    sizes: list[int] = []
    for sec in sections:
        size = len(splitter._tokenizer(sec.text))
        if merged and merged[-1].page == sec.page and sizes[-1] + size <= splitter.chunk_size:
            prev = merged[-1]
            # A heading with no text of its own hands the path on to what follows it.
            only_headings = all(_HEADING.match(line) for line in prev.text.splitlines() if line.strip())
            path = sec.path if only_headings or not prev.path else prev.path
            merged[-1] = Section(path=path, page=prev.page, text=f"{prev.text}\n\n{sec.text}")
            sizes[-1] += size
        else:
            merged.append(sec)
            sizes.append(size)
    return merged


def chunk_document(doc: Document, splitter: SentenceSplitter) -> list[Chunk]:
    pieces: list[tuple[Section, str]] = []
    for sec in _merge_small(split_sections(doc.text), splitter):
        pieces.extend((sec, t.strip()) for t in splitter.split_text(sec.text) if t.strip())
    return [
        Chunk(id=chunk_id(doc.id, i, text), doc_id=doc.id, position=i, text=text, title=doc.title,
              uri=doc.uri, source=doc.source, doc_hash=doc.content_hash, acl=doc.acl,
              section=sec.path, page=sec.page)
        for i, (sec, text) in enumerate(pieces)
    ]


def embedding_text(title: str, text: str, section: str = "") -> str:
    """What the embedder (and BM25) reads: title and section give a chunk the context its text may lack."""
    heading = f"{title} > {section}" if section and section != title else title
    return f"{heading}\n{text}"
