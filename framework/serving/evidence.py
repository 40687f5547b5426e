"""Evidence for an answer: the sentences of its sources that support it, with where to read them.

A small generator can say something its context does not: showing the two or three source
sentences that share most of the answer's content words (and their uri, section and page)
lets a reader check it at a glance. For deployments whose generator is too small to
trust, `generator.answer_style: extractive` answers with the sentences of the sources that
best match the question, verbatim, instead of generating.

Example:
    >>> from framework.records import Source
    >>> src = Source(chunk_id="c1", doc_id="d", title="Expenses", uri="file:///e.md", score=0.8,
    ...              text="Receipts are due within 30 days. Meals are capped at 45 EUR per day.")
    >>> [e.text for e in supporting_evidence("Meals are capped at 45 EUR.", [src], limit=1)]
    ['Meals are capped at 45 EUR per day.']
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from framework.records import Evidence, Source
from framework.text import content_words, sentences, words


def candidates(sources: Sequence[Source]) -> list[tuple[str, Source]]:
    """Every statement of every source once, in reading order (a source without one counts whole).

    Neighbouring chunks overlap, so a sentence can be in two sources: it is kept where it
    comes first."""
    out, seen = [], set()
    for s in sources:
        for text in sentences(s.text, min_chars=12) or [s.text.strip()]:
            key = " ".join(text.lower().split())
            if text and key not in seen:
                seen.add(key)
                out.append((text, s))
    return out


def _grams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    tokens = words(text)
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def _evidence(text: str, source: Source, score: float) -> Evidence:
    return Evidence(text=text, chunk_id=source.chunk_id, doc_id=source.doc_id, title=source.title, uri=source.uri,
                    section=source.section, page=source.page, score=round(score, 4))


def supporting_evidence(answer: str, sources: Sequence[Source], *, limit: int) -> tuple[Evidence, ...]:
    """Up to `limit` source sentences covering most of the answer's content words (score: the share covered)."""
    words = set(content_words(answer))
    if not words or limit <= 0:
        return ()
    scored = [(len(words & set(content_words(text))) / len(words), i, text, s)
              for i, (text, s) in enumerate(candidates(sources))]
    best = sorted((x for x in scored if x[0] > 0), key=lambda x: (-x[0], x[1]))[:limit]
    return tuple(_evidence(text, s, score) for score, _, text, s in best)


def extractive_answer(question: str, sources: Sequence[Source], *, embed: Callable[[list[str]], np.ndarray],
                      limit: int) -> tuple[str, tuple[Evidence, ...]]:
    """The `limit` source sentences closest to the question (embedder cosine), in reading order,
    as the answer; they are also its evidence. A sentence sharing most of its word 4-grams with
    one already chosen (the cut-off start of a sentence where two chunks overlap, say) is
    skipped, so the answer does not say the same thing twice."""
    found = candidates(sources)
    if not found or limit <= 0:
        return "", ()
    vectors = embed([question] + [text for text, _ in found])
    scores = vectors[1:] @ vectors[0]
    chosen, said = [], set()
    for i in np.argsort(-scores, kind="stable").tolist():
        grams = _grams(found[i][0])
        if grams and len(grams & said) * 2 > len(grams):
            continue  # mostly says what a chosen sentence says (a chunk's overlap, a repeated heading)
        chosen.append(i)
        said |= grams
        if len(chosen) == limit:
            break
    chosen.sort()
    evidence = tuple(_evidence(found[i][0], found[i][1], float(scores[i])) for i in chosen)
    return " ".join(e.text for e in evidence), evidence
