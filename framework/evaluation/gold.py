"""Gold sources: which retrieved chunks count as the right ones, and retrieval scores.

A question's gold sources are strings, each one of:
- a document id as ragtune writes it (`docs:handbook.md`), or a file name or path inside
  the source (`handbook.md`, `policies/expenses.txt`: whole path components only, so
  `a.md` does not match `data.md`);
- a uri (`file:///srv/docs/plan.pdf`, `https://wiki/page`): the chunk's uri without its
  fragment must equal it;
- either of those with `#page=N` (1-based): the chunk must also hold text from page N.

Example:
    >>> from framework.records import Source
    >>> s = Source(chunk_id="c", doc_id="docs:plan.pdf", title="", uri="file:///d/plan.pdf#page=7", score=1.0,
    ...            text="", page=7)
    >>> [matches(s, g) for g in ("plan.pdf", "plan.pdf#page=8", "file:///d/plan.pdf#page=7", "an.pdf")]
    [True, False, True, False]
"""

from __future__ import annotations

import statistics
from typing import Sequence

from framework.records import Source

GOLD_FIELDS = ("sources", "document", "doc_id")  # the first present names a question's gold


def gold_sources(row: dict) -> list[str]:
    """The gold sources of a question row (a string or a list in `sources`, `document` or `doc_id`)."""
    value = next((row[f] for f in GOLD_FIELDS if row.get(f) not in (None, "", [])), None)
    return [value] if isinstance(value, str) else list(value or [])


def matches(source: Source, gold: str) -> bool:
    name, _, page = gold.partition("#page=")
    if page and not (page.isdigit() and int(page) in source.pages):
        return False
    if "://" in name:
        return source.uri.split("#", 1)[0] == name.split("#", 1)[0]
    return source.doc_id == name or any(
        x.split("#", 1)[0].endswith(sep + name) for x in (source.doc_id, source.uri) for sep in (":", "/"))


def gold_rank(sources: Sequence[Source], gold: Sequence[str]) -> int | None:
    """1-based rank of the first retrieved chunk that matches a gold source; None when none does."""
    return next((r for r, s in enumerate(sources, 1) if any(matches(s, g) for g in gold)), None)


def retrieval_metrics(retrieved: list[list[Source]], gold: list, ks: tuple[int, ...] = (1, 3, 5, 10)) -> dict:
    """hit@k (a chunk of a gold source in the top k), recall@k (the share of a question's gold
    sources found in the top k) and MRR of the first gold chunk.

    Each gold entry is one source string or a list of them."""
    golds = [[g] if isinstance(g, str) else list(g or []) for g in gold]
    ranks = [gold_rank(sources, g) for sources, g in zip(retrieved, golds)]
    out: dict = {"questions": len(gold)}
    for k in ks:
        out[f"hit@{k}"] = round(statistics.fmean(r is not None and r <= k for r in ranks), 4) if ranks else 0.0
    for k in ks:
        shares = [sum(any(matches(s, d) for s in sources[:k]) for d in g) / len(g)
                  for sources, g in zip(retrieved, golds) if g]
        out[f"recall@{k}"] = round(statistics.fmean(shares), 4) if shares else 0.0
    out["mrr"] = round(statistics.fmean(1 / r if r else 0.0 for r in ranks), 4) if ranks else 0.0
    return out
