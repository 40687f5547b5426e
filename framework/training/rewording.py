"""Held-out rewordings of trained facts, and the key span that says whether an answer knows one.

The knowledge check must ask a fact in words the adapter never trained on, so these
questions come from a process of their own, unlike the dataset generator's: the fact's
statement with its key span (a date, a number, a name, a term) replaced by a gap,
common words swapped for synonyms, inside an imperative "fill the gap" template family
the generator never uses. An answer knows the fact when the key span appears in it
(case, punctuation and spacing aside): a recited sentence counts, a near miss does not.

Example:
    >>> key_span("Every employee receives 28 days of annual leave per year.", "How much leave?")
    '28'
    >>> span_hit("You get 28 days.", "28"), span_hit("You get 2.8 days.", "28")
    (True, False)
"""

from __future__ import annotations

import random
import re

_DATE = r"(?:\d{1,2} [A-Z][a-z]+ \d{3,4}|[A-Z][a-z]+ \d{1,2},? \d{3,4}|\d{4}-\d{2}-\d{2})"
_NUMBER = r"(?:[$€£]\s?)?\d(?:[\d,.:]*\d)?%?"
_NAME = r"(?<![.!?]\s)(?<!^)\b[A-Z][\w'-]*(?:\s(?:of\s|de\s|the\s)?[A-Z][\w'-]*)*"
_QUOTED = r"[\"“']([^\"”']{2,40})[\"”']"
# Synonyms the dataset generator does not use: the probe's wording differs from every training row.
SYNONYMS = {
    "receives": "gets", "receive": "get", "employee": "staff member", "employees": "staff members",
    "must": "has to", "submit": "hand in", "within": "inside of", "approval": "sign-off", "purchase": "buying",
    "established": "founded", "located": "situated", "largest": "biggest", "smallest": "tiniest",
    "called": "known as", "named": "known as", "begins": "starts", "began": "started", "ends": "finishes",
    "ended": "finished", "built": "constructed", "city": "town", "every": "each", "annual": "yearly",
    "requests": "applications", "request": "application", "always": "invariably", "approximately": "roughly",
    "about": "roughly", "before": "prior to", "after": "following", "during": "in the course of",
    "office": "workplace", "company": "firm", "customers": "clients", "customer": "client", "use": "make use of",
    "uses": "makes use of", "needs": "requires", "need": "require", "open": "accessible", "starts": "begins",
    "first": "earliest", "main": "principal", "known": "recognised", "large": "big",
    "small": "little", "big": "large", "allowed": "permitted", "cost": "price", "costs": "is priced at",
}
TEMPLATES = (
    'Fill in the gap as {title} has it: "{masked}"',
    '{title} contains this sentence with one part left out: "{masked}" What belongs in the gap?',
    'Complete from memory, naming the missing {kind}: {masked}',
    'Recall the missing {kind} in this line of {title}: "{masked}"',
)
GAP = "____"


def _norm(text: str) -> str:
    return " " + re.sub(r"\s+", " ", re.sub(r"[^\w%$€£:]+", " ", text.lower())).strip() + " "


def span_hit(answer: str, span: str) -> bool:
    """Whether `span` appears in `answer` as whole words (case, punctuation and spacing aside)."""
    return bool(span.strip()) and _norm(span) in _norm(answer)


def _kind(span: str) -> str:
    if re.fullmatch(_DATE, span):
        return "date"
    return "number" if re.match(r"[$€£]?\s?\d", span) else "name"


def key_span(statement: str, question: str = "") -> str | None:
    """The fact's key span in `statement`: a date, else a number (with its unit), else a name or a quoted
    term, whose words the question does not already hold; None when the statement has none."""
    asked = set(_norm(question).split())
    for pattern in (_DATE, _NUMBER, _QUOTED, _NAME):
        for m in re.finditer(pattern, statement):
            span = (m.group(1) if m.groups() else m.group(0)).strip().rstrip(".,;:")
            if span and not set(_norm(span).split()) <= asked:
                return span
    return None


def _swap(word: str) -> str:
    new = SYNONYMS.get(word.lower())
    if new is None:
        return word
    return new[0].upper() + new[1:] if word[0].isupper() else new


def reword(statement: str, span: str, *, title: str, rng: random.Random) -> str:
    """A question asking for `span` in new words: the statement with a gap, synonyms swapped, in one of
    the held-out templates."""
    before, _, after = statement.partition(span)
    side = [" ".join(_swap(w) for w in part.split(" ")) for part in (before, after)]
    masked = f"{side[0]}{GAP}{side[1]}".strip()
    template = rng.choice(TEMPLATES)
    return template.format(title=title or "the documents", masked=masked, kind=_kind(span))
