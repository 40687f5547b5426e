"""Plain-text helpers every stage shares: statements of a chunk, sentence ends, content words.

Chunks from PDFs arrive with lines wrapped at the page width, Markdown headings and bullets;
synthesis (framework.dataset) turns their statements into questions, and serving cuts answers
at sentence ends and picks supporting sentences from the sources. One definition of each
keeps those agreeing.

Example:
    >>> sentences("# Leave\\n- Every employee receives 28 days of leave.\\n- Leave requests go to the team lead.")
    ['Every employee receives 28 days of leave.', 'Leave requests go to the team lead.']
    >>> sentence_ends("It costs 12.50 EUR. Pay by card. Or")
    [19, 32]
    >>> sentence_ends("Two bands:\\n1. Senior: 98,000 EUR\\n2. Staff")
    [32]
"""

from __future__ import annotations

import re

_BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
# A sentence ends at . ! or ? followed by whitespace or the end of the text, but not after a
# known abbreviation or a single capital letter (an initial): "e.g." and "J. Smith" go on.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
_ABBREVIATIONS = ("e.g", "i.e", "vs", "approx", "incl", "dr", "mr", "mrs", "ms", "ext", "tel", "nr", "fig", "cf", "ca")
# A list marker alone ("1." "b)" "-"): what a line or a sentence holds before its content starts.
_MARKER = re.compile(r"\(?(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})[.)]|[-*+\u2022]")
_TRAILING_MARKER = re.compile(r"(?:^|\n)[ \t]*(?:\(?(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})[.)]|[-*+\u2022])[ \t]*$")
_WORD = re.compile(r"[a-z0-9]+(?:[.,:][0-9]+)*")
STOPWORDS = frozenset(
    "a an the of to in on at for and or is are be by with from as that this it its do does i my we our you your "
    "can what how which when who whom whose why where could should would will may must there their they them "
    "about any some if not no yes was were been has have had than then so such".split())


def unwrap(text: str) -> list[str]:
    """Join lines a PDF wrapped at the page width back into one line per paragraph or item.

    A line continues the previous one when that one is long (wrapped) and ends without
    sentence punctuation, or when it starts in lower case; headings and bullets stay apart.
    """
    out: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        prev = out[-1] if out else ""
        joinable = prev and not prev.startswith("#") and line and not _BULLET.match(line) and not line.startswith("#")
        if joinable and ((len(prev) >= 60 and not prev.endswith((".", "!", "?", ":"))) or line[0].islower()):
            out[-1] = f"{prev} {line}"
        else:
            out.append(line)
    return out


def sentences(text: str, *, min_chars: int = 20) -> list[str]:
    """Split a chunk into statements: headings are dropped, bullets become sentences."""
    out: list[str] = []
    for line in unwrap(text):
        line = _BULLET.sub("", line).strip()
        if not line or line.startswith("#") or len(line) < min_chars:
            continue
        out.extend(s.strip() for s in _split(line) if len(s.strip()) >= min_chars)
    return out


def _abbreviation(text: str) -> bool:
    """Whether `text` ends in a known abbreviation or an initial ("ext." "e.g." "J."): no sentence ends there."""
    before = text.rsplit(None, 1)[-1].lower() if text.strip() else ""
    before = before.rstrip(".!?\"')]")
    return before in _ABBREVIATIONS or (len(before) == 1 and before.isalpha())


def _split(line: str) -> list[str]:
    """A line's sentences; "ext. 4417" and "e.g. Visa" stay inside theirs."""
    parts, start = [], 0
    for m in _SENTENCE_SPLIT.finditer(line):
        if not _abbreviation(line[:m.start()]):
            parts.append(line[start:m.start()])
            start = m.end()
    return parts + [line[start:]]


def sentence_ends(text: str) -> list[int]:
    """Offsets just past each complete sentence in `text` (an answer being generated).

    Sentences are counted by content: a list marker ("1." at the start of a line or of a sentence)
    ends nothing, and a list item ("1. Senior: 98,000 EUR") ends at its line end when it has no
    full stop of its own, so a list answer is counted by its items and never cut after a bare marker."""
    ends, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if _abbreviation(text[:m.start()]):
            continue
        segment = text[max(start, text.rfind("\n", 0, m.start()) + 1):m.end()].strip()
        if _MARKER.fullmatch(segment) or not any(c.isalnum() for c in segment):
            continue
        ends.append(m.end())
        start = m.end()
    offset = 0
    for line in text.split("\n")[:-1]:  # every line but the last is followed by a line break
        body = line.rstrip()
        item = _BULLET.match(body)
        if item and body[item.end():].strip() and not (ends and offset + len(body) in ends):
            ends.append(offset + len(body))
        offset += len(line) + 1
    return sorted(ends)


def strip_list_marker(text: str) -> str:
    """`text` without a list marker it ends on ("...\\n2." -> "..."); an answer must not end on one.

    Example:
        >>> strip_list_marker("1. Senior: 98,000 EUR\\n2.")
        '1. Senior: 98,000 EUR'
    """
    return _TRAILING_MARKER.sub("", text.rstrip()).rstrip()


def words(text: str) -> list[str]:
    """Lower-cased words and numbers, in order (12.50 stays whole)."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """Lower-cased words and numbers (12.50 stays whole) without stopwords: what an answer says."""
    return [w for w in words(text) if w not in STOPWORDS]
