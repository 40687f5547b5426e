"""Sources and evidence as the HTTP API shows them: where to read each, without the server's file paths.

A `file://` URI names a path on the server (`file:///srv/ragtune/hr/salaries.md`): it tells a caller
how the server's disks are laid out and opens nothing on their machine. Over HTTP a source is named by
its document id (`hr:salaries.md`, the source's name and the document's place in it) and `path`, its
place inside the source (the file's path relative to the source folder, a page or row key for other
connectors); `uri` is kept only where a caller can open it, for `http`/`https` documents (web pages,
Confluence, Notion, a git source's `uri_template`), and is null otherwise. The Python API's `Answer` keeps
the full URIs: it runs on the server.

Example:
    >>> location("file:///srv/docs/hr/leave.md", "hr:leave.md")
    {'uri': None, 'source': 'hr', 'path': 'leave.md'}
    >>> location("https://wiki.example.com/x/42", "wiki:42")["uri"]
    'https://wiki.example.com/x/42'
"""

from __future__ import annotations

from urllib.parse import urlsplit

from framework.records import Evidence, Source

OPENABLE = ("http", "https")


def location(uri: str, doc_id: str) -> dict:
    """`uri` where a caller can open it (http/https), else None; the source's name and the place in it."""
    source, _, path = doc_id.partition(":")
    return {"uri": uri if urlsplit(uri).scheme.lower() in OPENABLE else None, "source": source if path else None,
            "path": path or doc_id}


def source_view(s: Source) -> dict:
    """One entry of `ragtune.sources` in an HTTP response."""
    return {"title": s.title, **location(s.uri, s.doc_id), "section": s.section, "page": s.page,
            "page_end": s.page_end, "score": s.score, "chunk_id": s.chunk_id, "doc_id": s.doc_id}


def evidence_view(e: Evidence) -> dict:
    """One entry of `ragtune.evidence` in an HTTP response."""
    return {"text": e.text, "title": e.title, **location(e.uri, e.doc_id), "section": e.section, "page": e.page,
            "score": e.score, "chunk_id": e.chunk_id, "doc_id": e.doc_id}
