"""Where `dataset.pii_mode` is applied: to chunks before any generator sees them, and to every row written.

Scrubbing only the generated pairs is not enough: a generator can alter personal data into a
form no scanner recognises. The extractive generator once turned "refunds go to
DE11586470316028527288." into "refunds go to what11586470316028527288?", and the rest of the
IBAN reached every file of the dataset. So there are two points, each counted per kind on the
card (`pii.chunks`, `pii.written`; `pii.generated` counts what generated pairs held):

1. Before generation, every eligible chunk's text and title are redacted. No generator
   (extractive, local model, remote teacher, paraphraser) ever sees the personal data, and
   RAFT context chunks are taken from the same redacted texts.
2. Every row written (its question, answer and every message) is scanned again, for the
   kinds the scanner knows and for every value point 1 found: its exact text in any case, and
   for numbers any run of its digits (at least MIN_SLICE of them, or the whole number when
   shorter), also inside a word, so the tail of a number whose prefix was rewritten is caught.
   The values are held in memory only, never written.

Modes: `redact` replaces findings with placeholders; `drop` redacts the chunks just the same
and then leaves out every example that touched personal data (a pair holding a placeholder,
a row where the last scan still finds some in the question or answer); `off` scans and
changes nothing at all.

Example:
    >>> guard = Redactor(DatasetConfig())
    >>> chunk = Chunk(id="c", doc_id="d", position=0, text="Refunds go to DE11586470316028527288.",
    ...               title="Refunds", uri="", source="s", doc_hash="h", acl=("public",))
    >>> guard.chunk(chunk).text
    'Refunds go to [IBAN].'
    >>> guard.text("What11586470316028527288?", "written")
    'What[IBAN]?'
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

from framework.config import DatasetConfig
from framework.dataset.pii import PLACEHOLDERS, Scrubber
from framework.records import Chunk, QAPair

MIN_DIGITS = 6  # a number with fewer digits is too common to hunt in other text
MIN_SLICE = 8  # this many consecutive digits of a found number count as that number
WINDOW = 10  # ... also inside a longer run of digits (fewer would match unrelated numbers by chance)
POINTS = ("chunks", "generated", "written")
_DIGIT_RUN = re.compile(r"\d(?:[ ./-]?\d)*")  # no word boundary: digits glued to a word count too


def placeholder(kind: str) -> str:
    return PLACEHOLDERS.get(kind, f"[{kind.upper()}]")


class Redactor:
    """Applies dataset.pii_mode at both points and counts, per point and kind, what it found and redacted."""

    def __init__(self, cfg: DatasetConfig) -> None:
        self.mode = cfg.pii_mode
        self.scrubber = Scrubber(extra=cfg.pii_patterns, phone_region=cfg.pii_phone_region, allow=tuple(cfg.pii_allow))
        self.found = {p: Counter() for p in POINTS}
        self.redacted = {p: Counter() for p in POINTS}
        self.dropped = 0
        kinds = {*PLACEHOLDERS, *cfg.pii_patterns}
        self._placeholders = re.compile("|".join(re.escape(placeholder(k)) for k in sorted(kinds)))
        self._values: dict[str, str] = {}  # found text (lower case) -> kind
        self._numbers: dict[str, str] = {}  # digits of a found number -> kind
        self._slices: dict[str, str] = {}  # MIN_SLICE or more consecutive digits of a found number -> kind
        self._known: re.Pattern | None = None
        self._seen: dict[str, tuple[str, list[str]]] = {}  # text -> (redacted, kinds): rows repeat their texts

    def chunk(self, chunk: Chunk) -> Chunk:
        """The chunk with personal data in its text and title redacted, remembered for the last scan."""
        if self.mode == "off":
            return chunk
        text, title = self.text(chunk.text, "chunks"), self.text(chunk.title, "chunks")
        return chunk if (text, title) == (chunk.text, chunk.title) else replace(chunk, text=text, title=title)

    def pairs(self, pairs: list[QAPair]) -> list[QAPair]:
        """Generated pairs scanned again (a teacher can write personal data of its own); in drop mode a
        pair that touched any (it holds a placeholder) is left out."""
        if self.mode == "off":
            return pairs
        out = []
        for p in pairs:
            q, a, fact = (self.text(t, "generated") for t in (p.question, p.answer, p.fact))
            if self.mode == "drop" and any(self._placeholders.search(t) for t in (q, a, fact)):
                self.dropped += 1
                continue
            out.append(p if (q, a, fact) == (p.question, p.answer, p.fact) else replace(p, question=q, answer=a, fact=fact))
        return out

    def rows(self, rows: list[dict]) -> list[dict]:
        """The last scan of rows about to be written: every message, the question and the answer.
        In drop mode a row whose question or answer still held personal data is left out."""
        if self.mode == "off":
            return rows
        out = []
        for row in rows:
            before = sum(self.found["written"].values())
            question, answer = self.text(row["question"], "written"), self.text(row["answer"], "written")
            if self.mode == "drop" and sum(self.found["written"].values()) > before:
                self.dropped += 1
                continue
            messages = [{**m, "content": self.text(m["content"], "written")} for m in row["messages"]]
            out.append({**row, "messages": messages, "question": question, "answer": answer})
        return out

    def text(self, text: str, point: str) -> str:
        """`text` with every finding replaced by its placeholder, counted under `point`; at the chunk
        point each finding is remembered, at the others the remembered values are hunted too."""
        if point != "chunks" and text in self._seen:
            clean, kinds = self._seen[text]
        else:
            found = self.scrubber.find(text)
            clean, kinds = text, [k for _, _, k in found]
            for start, end, kind in reversed(found):
                if point == "chunks":
                    self._remember(text[start:end], kind)
                clean = clean[:start] + placeholder(kind) + clean[end:]
            if point != "chunks":
                clean, more = self._hunt(clean)
                kinds += more
                self._seen[text] = (clean, kinds)
        self.found[point].update(kinds)
        self.redacted[point].update(kinds)
        return clean

    def report(self) -> dict:
        """The card's `pii` section: per point, what was found and redacted per kind."""
        points = {p: {"found": dict(sorted(self.found[p].items())), "redacted": dict(sorted(self.redacted[p].items()))}
                  for p in POINTS}
        total = sum((self.found[p] for p in POINTS), Counter())
        return {"mode": self.mode, **points, "found": dict(sorted(total.items())), "dropped_examples": self.dropped}

    def _remember(self, value: str, kind: str) -> None:
        self._known, self._seen = None, {}
        if len(value) >= MIN_DIGITS:
            self._values[value.lower()] = kind
        digits = re.sub(r"\D", "", value)
        if len(digits) >= MIN_DIGITS:
            self._numbers[digits] = kind
            for size in range(MIN_SLICE, len(digits)):
                for start in range(len(digits) - size + 1):
                    self._slices[digits[start:start + size]] = kind

    def _hunt(self, text: str) -> tuple[str, list[str]]:
        """Remembered values in `text`: exact (any case), or as digits, whole or a long enough slice."""
        kinds: list[str] = []
        if self._values:
            if self._known is None:
                self._known = re.compile("|".join(re.escape(v) for v in sorted(self._values, key=len, reverse=True)),
                                         re.IGNORECASE)

            def value(m: re.Match) -> str:
                kinds.append(self._values[m.group().lower()])
                return placeholder(kinds[-1])

            text = self._known.sub(value, text)
        if self._numbers:

            def number(m: re.Match) -> str:
                kind = self._number_kind(re.sub(r"\D", "", m.group()))
                if kind is None:
                    return m.group()
                kinds.append(kind)
                return placeholder(kind)

            text = _DIGIT_RUN.sub(number, text)
        return text, kinds

    def _number_kind(self, digits: str) -> str | None:
        """The kind of the found number these digits are or are a long slice of, or that they contain
        (whole, or a slice of WINDOW digits: a run that joined a number with its neighbour)."""
        if len(digits) < MIN_DIGITS:
            return None
        if digits in self._numbers or digits in self._slices:
            return self._numbers.get(digits) or self._slices[digits]
        sizes = {len(n) for n in self._numbers if len(n) < len(digits)} | ({WINDOW} if len(digits) > WINDOW else set())
        for size in sorted(sizes):
            for start in range(len(digits) - size + 1):
                part = digits[start:start + size]
                if part in self._numbers or (size == WINDOW and part in self._slices):
                    return self._numbers.get(part) or self._slices[part]
        return None
