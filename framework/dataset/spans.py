"""Key spans of a statement and its clause structure: what a fact's short answer is.

A fact is taught best as the short thing it states (a number with its unit, a name, a
date, a term) asked in several ways, not as a sentence to recite. This module finds those
spans with regular expressions that hold for any English prose (policies, manuals,
articles): amounts, dates, years, times, weekdays, counts with their unit, e-mail
addresses and channels, and multi-word proper names. It also splits a statement into its
subject, verb and the rest where that is unambiguous (an auxiliary or a present-tense
verb after the subject), which lets `framework.dataset.phrasings` invert a question or
ask it from the subject's side; where the split is uncertain it returns None and those
forms are skipped rather than guessed.

Example:
    >>> [(s.kind, s.text) for s in find_spans("Every employee receives 28 calendar days of leave.")]
    [('number', '28 calendar days')]
    >>> clause("Every employee receives 28 calendar days of leave.")
    Clause(subject='Every employee', verb='receives', rest='28 calendar days of leave', aux=False)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
_DATE = re.compile(rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b|\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}"
                   rf"(?:\s+\d{{4}})?\b|\b(?:19|20)\d\d-\d\d-\d\d\b|\b\d{{1,2}}/\d{{1,2}}/(?:19|20)?\d\d\b")
_AMOUNT = re.compile(r"(?:EUR|USD|GBP|€|\$|£)\s?\d[\d,.]*\d|(?:EUR|USD|GBP|€|\$|£)\s?\d|\b\d[\d,.]*\s*(?:EUR|euros?|USD|"
                     r"dollars?|GBP|pounds?|%|percent)(?=\W|$)")
_YEAR = re.compile(r"\b(?:1[5-9]|20)\d\d\b(?![-/:.,]\d)")
_TIME = re.compile(r"\b\d{1,2}:\d{2}\b(?:\s*(?:to|-|and)\s*\d{1,2}:\d{2})?")
_WEEKDAY = re.compile(r"\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)s?\b")
# A count: a number and up to two lower-case words of unit ("28 calendar days", "3 Quill Days" is a name)
_COUNT = re.compile(r"(?<![\d:/.$€£-])\b(?P<num>\d[\d,.]*\d|\d)(?![\d:/-])(?P<unit>(?: [a-z][a-z-]+){1,2})")
_NUM_WORD_STOP = set("of to in on at for and or per from by with a an the is are was were before after".split())
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]*\w\b")
_CHANNEL = re.compile(r"(?<!\w)#[a-z0-9][a-z0-9_-]+")
# Two or more capitalised words, optionally joined by of/and/for/the/de: "Lumen Ledger", "Bank of Estonia"
_NAME = re.compile(r"(?<![\w-])(?:[A-Z][\w&'-]*[a-z0-9][\w&'-]*|[A-Z]{2,})(?: (?:(?:of|and|for|the|de|von|van) )?"
                   r"(?:[A-Z][\w&'-]*|[A-Z]{2,}))+")
_SINGLE_NAME = re.compile(r"(?<![\w-])[A-Z][a-z][\w'-]{1,}(?![\w-])")
_STARTERS = {"the", "a", "an", "every", "each", "all", "our", "this", "that", "these", "those", "in", "on", "at", "for",
             "if", "when", "after", "before", "during", "since", "from", "to", "by", "with", "as", "some", "any", "no"}

WH = {"date": "what date", "amount": "how much", "year": "which year", "time": "what time", "day": "which day",
      "number": "how many", "contact": "which address", "name": "what"}
# the preposition in front of a span moves with the wh-word: "in 2016" -> "in which year"
_PREP_BEFORE = re.compile(r"(?:\b(?:in|on|at|by|from|since|until|before|after|to|for|of|with|within|under) )?"
                          r"(?:\b(?:the|a|an|every|each) )?$")

_AUX = ("is", "are", "was", "were", "has", "have", "had", "can", "could", "must", "may", "might", "will", "would",
        "should", "shall", "does", "do", "did")
_DETERMINERS = {"the", "a", "an", "every", "each", "all", "our", "its", "their", "this", "that", "these", "those",
                "any", "some", "no", "his", "her", "your", "my"}
_ADVERBS = {"also", "always", "never", "often", "still", "only", "usually", "now", "already", "then", "just", "even"}
_NOT_VERBS = {"is", "was", "has", "does", "this", "its", "his", "us", "as", "yes", "thus", "plus", "always",
              "sometimes", "perhaps", "less", "unless", "whereas", "across", "towards", "besides", "news", "series",
              "means", "species", "hours", "days", "weeks", "months", "years", "minutes", "times", "others"}


@dataclass(frozen=True)
class Span:
    """A key span of a sentence: the short answer of a fact, with its position and kind."""

    start: int
    end: int
    text: str
    kind: str

    def wh(self, sentence: str) -> tuple[str, int]:
        """The wh-phrase asking for this span and where it starts (a preposition before it moves along)."""
        lead = _PREP_BEFORE.search(sentence[: self.start])
        start = lead.start() if lead and lead.group(0) else self.start
        prep = re.sub(r"\b(?:the|a|an|every|each) $", "", lead.group(0)) if lead else ""
        if self.kind == "day" and not prep and lead and lead.group(0):
            prep = "on "  # "held every Monday" -> "held on which day"
        if self.kind == "number":
            unit = self.text.split(" ", 1)[1] if " " in self.text else ""
            return f"{prep}how many {unit}".rstrip(), start
        if self.kind == "name":
            return f"{prep}{'whom' if prep.strip() in ('by', 'with', 'to', 'for') else 'what'}", start
        return f"{prep}{WH[self.kind]}", start


def find_spans(sentence: str, *, proper: set[str] = frozenset()) -> list[Span]:
    """Key spans in reading order, without overlaps (dates and amounts win over the numbers inside them).

    `proper` holds words the document capitalises mid-sentence, so a sentence's first
    word counts as a name only when the document writes it capitalised elsewhere too.
    """
    found: list[Span] = []

    def add(start: int, end: int, kind: str) -> None:
        text = sentence[start:end].rstrip(".,;: ")
        end = start + len(text)
        if text and not any(s.start < end and start < s.end for s in found):
            found.append(Span(start, end, text, kind))

    for pattern, kind in ((_EMAIL, "contact"), (_CHANNEL, "contact"), (_DATE, "date"), (_TIME, "time"),
                          (_AMOUNT, "amount"), (_YEAR, "year"), (_WEEKDAY, "day")):
        for m in pattern.finditer(sentence):
            add(m.start(), m.end(), kind)
    for m in _COUNT.finditer(sentence):
        unit = [w for w in m["unit"].split()]
        while unit and unit[-1] in _NUM_WORD_STOP:
            unit.pop()
        if unit:
            add(m.start(), m.start("unit") + 1 + len(" ".join(unit)), "number")
    for m in _NAME.finditer(sentence):
        first, _, rest = m.group(0).partition(" ")
        if m.start() == 0 and first.lower() in _STARTERS:
            if rest and (" " in rest or rest in proper):
                add(m.start() + len(first) + 1, m.end(), "name")
        elif m.start() > 0 or rest or first in proper:
            add(m.start(), m.end(), "name")
    for m in _SINGLE_NAME.finditer(sentence):
        if m.start() > 0 and sentence[m.start() - 2: m.start()] not in (". ", ": "):
            add(m.start(), m.end(), "name")
    return _merge_lists(sentence, sorted(found, key=lambda s: s.start))


def _merge_lists(sentence: str, spans: list[Span]) -> list[Span]:
    """Names listed together ('Crumb, Loaf and Bakehouse') are one answer, not a name with a gap."""
    out: list[Span] = []
    for s in spans:
        prev = out[-1] if out else None
        if prev and prev.kind == s.kind == "name" and re.fullmatch(r",? and |, |,? or ", sentence[prev.end:s.start]):
            out[-1] = Span(prev.start, s.end, sentence[prev.start:s.end], "name")
        else:
            out.append(s)
    return out


@dataclass(frozen=True)
class Clause:
    """A statement split at its main verb: `subject verb rest` (aux: the verb is an auxiliary)."""

    subject: str
    verb: str
    rest: str
    aux: bool


def clause(sentence: str) -> Clause | None:
    """The subject, main verb and rest of a plain statement; None when the split is not clear.

    The verb is the first auxiliary (is, must, was, ...) or present-tense verb ending in -s
    after a subject of one to eight words with no comma; the subject may not end in a
    determiner or preposition. Sentences that open with a clause ("If ..., ") are skipped.
    """
    body = sentence.strip().rstrip(".!")
    words = body.split(" ")
    for i, w in enumerate(words[1:9], start=1):
        if "," in w or ";" in w or ":" in w:
            return None
        low = w.lower()
        prev = words[i - 1].lower()
        if prev in _DETERMINERS or prev in _NUM_WORD_STOP:
            continue
        if prev in _ADVERBS or prev.endswith("ly"):
            return None
        nxt = words[i + 1].lower() if i + 1 < len(words) else ""
        is_aux = low in _AUX
        is_s_verb = (w.islower() and len(w) > 3 and low.endswith("s") and not low.endswith(("ss", "us", "is", "ous"))
                     and low not in _NOT_VERBS and not words[i - 1][:1].isdigit() and nxt not in _AUX)
        if (is_aux or is_s_verb) and i + 1 < len(words):
            return Clause(" ".join(words[:i]), w, " ".join(words[i + 1:]), is_aux)
        if words[0].lower() in ("if", "when", "while", "although", "because", "after", "before", "for", "in", "on"):
            return None
    return None


def base_form(verb: str) -> str:
    """'receives' -> 'receive', 'applies' -> 'apply', 'pushes' -> 'push', 'has' -> 'have'."""
    low = verb.lower()
    if low == "has":
        return "have"
    if low.endswith("ies") and len(low) > 4:
        return low[:-3] + "y"
    if low.endswith(("ches", "shes", "sses", "xes", "zes", "oes")):
        return low[:-2]
    return low[:-1]


def head_noun(subject: str) -> str:
    """The head of a noun phrase: 'The People team at Acme' -> 'team', 'Every employee' -> 'employee'."""
    core = re.split(r" (?:of|at|in|for|on|from|with|who|that|which) ", subject, maxsplit=1)[0]
    return core.split(" ")[-1].lower() if core else ""


def is_proper(phrase: str) -> bool:
    """A name: every word capitalised, or an acronym ('Lumen Ledger', 'IT')."""
    words = [w for w in phrase.split(" ") if w not in ("of", "and", "for", "the", "de") and not w.startswith("(")]
    return bool(words) and all(w[:1].isupper() for w in words)


_LEADERS = {"in", "on", "at", "for", "during", "after", "before", "outside", "inside", "if", "when", "unless", "since",
            "within", "under", "from", "per", "once", "while", "although", "as", "by", "until", "with", "without"}


def reorder(sentence: str, proper: set[str] = frozenset()) -> str | None:
    """The sentence with one clause moved: a leading 'X, ...' to the end, or a trailing phrase to the front.

    'Outside core hours, employees may work freely.' -> 'Employees may work freely outside core hours.'
    'Leave requests go to the team lead in the HR system.' -> 'In the HR system, leave requests go to ...'
    """
    body = sentence.strip().rstrip(".!?")
    end = sentence.strip()[len(body):] or "."
    if (m := re.match(r"^([^,]{3,60}), (.{12,})$", body)) and m[1].split(" ", 1)[0].lower() in _LEADERS:
        head, tail = m[1], m[2]
        return f"{upper_first(tail)} {lower_first(head, proper)}{end}"
    preps = list(re.finditer(r" (?:in|on|at|for|per|during|after|before|within|from|until|without|with|by|under|"
                             r"since|across|through) ", body))
    c = clause(body)
    for p in reversed(preps):
        head, tail = body[: p.start()], body[p.start() + 1:]
        if c is None or p.start() < len(c.subject) + len(c.verb) + 2 or "\u2047" in tail:
            break
        if len(head.split()) >= 3 and 2 <= len(tail.split()) <= 8 and "," not in tail:
            return f"{upper_first(tail)}, {lower_first(head, proper)}{end}"
    return None


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def lower_first(text: str, proper: set[str] = frozenset()) -> str:
    """Lower-case the first letter unless the first word is a name the document capitalises or an acronym."""
    first, _, rest = text.partition(" ")
    if first in proper or any(c.isupper() for c in first[1:]) or (first.lower() not in _STARTERS and rest[:1].isupper()):
        return text
    return text[:1].lower() + text[1:]


_MARKUP = re.compile(r"[|{}=<>`\\$\[\]]|^\W|https?://|\w\(\)")


def is_prose(sentence: str) -> bool:
    """A statement in words, not a table row, code, a command or a link list: only those are asked about.

    Example:
        >>> is_prose("Every employee receives 28 days of leave."), is_prose("| Senior | 4 weeks | Travel |")
        (True, False)
    """
    letters = sum(c.isalpha() or c.isspace() for c in sentence)
    return len(sentence) <= 320 and not _MARKUP.search(sentence) and letters >= 0.8 * len(sentence)
