"""Split documents into chunks the embedder sees whole.

all-MiniLM-L6-v2 truncates at 256 word pieces: text past that is invisible to
retrieval, so chunks are measured with the embedder's own tokenizer. The default is
half the embedder's window, which keeps three retrieved chunks short enough for a
135M-parameter generator to use.

Example:
    >>> from framework.embedder import HashingEmbedder
    >>> splitter = make_splitter(HashingEmbedder(), chunk_size=None, chunk_overlap=8)
    >>> splitter.chunk_size
    128
"""

from __future__ import annotations

import hashlib
import logging

from llama_index.core.node_parser import SentenceSplitter

from framework.embedder import Embedder
from framework.records import Chunk, Document

log = logging.getLogger(__name__)

# Room for the title line that is embedded with every chunk.
_TITLE_MARGIN = 16


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


def chunk_document(doc: Document, splitter: SentenceSplitter) -> list[Chunk]:
    texts = [t.strip() for t in splitter.split_text(doc.text) if t.strip()]
    return [
        Chunk(id=chunk_id(doc.id, i, text), doc_id=doc.id, position=i, text=text, title=doc.title,
              uri=doc.uri, source=doc.source, doc_hash=doc.content_hash, acl=doc.acl)
        for i, text in enumerate(texts)
    ]


def embedding_text(title: str, text: str) -> str:
    """What the embedder (and BM25) reads: the title gives a chunk the context its text may lack."""
    return f"{title}\n{text}"
