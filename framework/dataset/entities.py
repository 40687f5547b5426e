"""Entity-centred rows: what a passage says about one name, gathered across its sentences.

A question that composes two facts ("Who leads the team that runs the product launched in
2019?") needs the facts linked in the weights, not only each one recallable on its own.
Rows that put together every statement a passage makes about one entity (EntiGraph,
arXiv 2409.07431; Active Reading, arXiv 2508.09494) teach those links. A name counts
when two or more of the passage's sentences mention it; its answer is those sentences,
copied in order (and, for the second phrasing, starting from the last), cut to
`max_chars` at a sentence end.

Example:
    >>> text = "Lumen Ledger is a bookkeeping app. Lumen Ledger costs 9 EUR a month. The office is in Tallinn."
    >>> sorted(p.question for p in entity_families(text)[0])
    ['Tell me everything you know about Lumen Ledger.', 'What do the documents say about Lumen Ledger?']
"""

from __future__ import annotations

from collections import Counter

from framework.dataset.phrasings import family
from framework.dataset.spans import find_spans, is_prose
from framework.records import QAPair
from framework.text import sentences


def _names(text: str, proper: set[str]) -> list[tuple[str, list[str]]]:
    """Names mentioned in two sentences or more, most mentioned first, with those sentences."""
    found: dict[str, list[str]] = {}
    for s in sentences(text):
        s = s.replace("**", "").strip()
        if not is_prose(s):
            continue
        for span in find_spans(s.rstrip(".!"), proper=proper):
            if span.kind == "name" and len(span.text) >= 4 and s not in found.setdefault(span.text, []):
                found[span.text].append(s)
    counts = Counter({name: len(ss) for name, ss in found.items() if len(ss) >= 2})
    return [(name, found[name]) for name, _ in counts.most_common()]


def _joined(statements: list[str], max_chars: int) -> str:
    out: list[str] = []
    for s in statements:
        s = s if s.endswith((".", "!", "?")) else s + "."
        if len(" ".join(out + [s])) > max_chars:
            break
        out.append(s)
    return " ".join(out)


def entity_families(text: str, *, title: str = "", proper: set[str] = frozenset(), max_entities: int = 2,
                    max_chars: int = 360) -> list[list[QAPair]]:
    """One family per name mentioned in two sentences or more (the most mentioned `max_entities`)."""
    out = []
    where = f" in {title}" if title else ""
    for name, statements in _names(text, proper)[:max_entities]:
        forward, backward = _joined(statements, max_chars), _joined(statements[::-1], max_chars)
        if forward.count(".") < 2:
            continue
        out.append(family(f"entity:{name}:{forward}", "entity", [
            ("profile", f"What do the documents say about {name}?", forward),
            ("profile_reverse", f"Tell me everything you know about {name}{where}.", backward)]))
    return out
