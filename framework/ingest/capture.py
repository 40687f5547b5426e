"""Library warnings raised while one document is parsed, kept for that document's report entry.

Parsers talk through `warnings.warn` and `logging` (pypdf logs "EOF marker not found" once
per attempt to read a damaged PDF). Printed bare, they name no file and drown the report, and
from a parse worker they interleave with the progress bar. While a document is parsed, both
are caught here and returned, counted and de-duplicated, so the ingest report shows them
under the file they are about. Parsing runs in a worker process, or in the calling thread
when `ingest.parse_workers` is 0; both parse one document at a time, which is what makes
swapping the root logger's handlers for the duration safe.

Example:
    >>> import warnings
    >>> with captured() as found:
    ...     warnings.warn("EOF marker not found")
    ...     warnings.warn("EOF marker not found")
    >>> found
    ['EOF marker not found (2 times)']
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from contextlib import contextmanager
from typing import Iterator

MAX_MESSAGES = 10
MAX_CHARS = 300


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # a record whose arguments do not format: keep its template
            self.messages.append(str(record.msg))


def summarize(messages: list[str]) -> list[str]:
    """Each distinct message once, in first-seen order, with its count when repeated; at most MAX_MESSAGES."""
    counts = Counter(" ".join(m.split())[:MAX_CHARS] for m in messages if m.strip())
    out = [m if n == 1 else f"{m} ({n} times)" for m, n in counts.items()]
    if len(out) > MAX_MESSAGES:
        out = out[:MAX_MESSAGES] + [f"... and {len(out) - MAX_MESSAGES} more distinct warnings"]
    return out


@contextmanager
def captured() -> Iterator[list[str]]:
    """Collect warnings and WARNING-or-worse log records instead of printing them; the list is
    filled (summarized) when the block ends, whether it raised or not."""
    found: list[str] = []
    root = logging.getLogger()
    handler, saved = _Collect(), root.handlers[:]
    root.handlers = [handler]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield found
    finally:
        root.handlers = saved
        found.extend(summarize([str(w.message) for w in caught] + handler.messages))
