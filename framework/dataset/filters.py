"""Filters over synthetic pairs, each counting what it drops.

The counts go into `card.json`, so an empty or thin set is explained rather than silent:
length bounds, an answer the chunk does not support, exact and near duplicates (paraphrases
of one question excepted), and the round trip (a question must retrieve its own chunk).
Only chunks every member of the audience may read are eligible at all.

Example:
    >>> readable_by_audience(("hr", "staff"), ["hr"])
    True
    >>> readable_by_audience(("hr",), [])
    False
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Sequence

from framework.config import DatasetConfig
from framework.dataset.near_dup import JaccardIndex
from framework.records import PUBLIC_GROUP, Chunk, QAPair, Source
from framework.text import content_words

FILTERS = ("too_short", "too_long", "unsupported_answer", "answer_repeats_question", "wh_fragment", "duplicate",
           "near_duplicate", "round_trip", "pii")
# a wh-word left where a span was cut out, or a question that is only a wh-word: "... founded by what."
_WH_FRAGMENT = re.compile(r"\b(?:what|which|who|whom)\s*[.!]|^\W*(?:what|which|who|whom|how)\W*$", re.IGNORECASE)


class DatasetTooSmallError(RuntimeError):
    """The filters left too few examples to train on."""


def _norm_tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def readable_by_audience(acl: Sequence[str], audience: Sequence[str]) -> bool:
    """Weights cannot enforce ACLs: train only on what every audience group may read."""
    return PUBLIC_GROUP in acl or (bool(audience) and set(audience) <= set(acl))


def repeats_question(question: str, answer: str) -> bool:
    """The answer says nothing the question does not: every content word of it is in the question.

    A cloze question whose answer is its own sentence teaches recitation, not the fact.

    Example:
        >>> repeats_question("Must employees submit receipts within 30 days?", "Employees must submit receipts within 30 days.")
        True
        >>> repeats_question("Employees must submit receipts within how many days?", "30 days.")
        False
    """
    said = set(content_words(answer))
    return bool(said) and said <= set(content_words(question))


def wh_fragment(question: str, answer: str) -> bool:
    """A question or answer holding a bare wh-word fragment ('... by what.'), or an empty answer."""
    return bool(_WH_FRAGMENT.search(question) or _WH_FRAGMENT.search(answer)) or not answer.strip(" .?!")


def _support(answer: str, chunk_text: str) -> float:
    answer_tokens = set(_norm_tokens(answer))
    return len(answer_tokens & set(_norm_tokens(chunk_text))) / max(1, len(answer_tokens))


def filter_pairs(pairs: list[tuple[Chunk, QAPair]], cfg: DatasetConfig,
                 scores: dict | None = None) -> tuple[list[tuple[Chunk, QAPair]], Counter]:
    """Length, grounding, exact- and near-duplicate filters; returns kept pairs and drop counts.

    Paraphrases of one question are not near duplicates of each other: they are meant
    to be close. `scores`, when given, receives each kept pair's support and similarity.
    """
    dropped: Counter = Counter()
    kept: list[tuple[Chunk, QAPair]] = []
    seen_exact: set[str] = set()
    keys = [" ".join(_norm_tokens(p.question)) for _, p in pairs]
    near = JaccardIndex(keys, threshold=cfg.near_duplicate_threshold)
    for n, (chunk, p) in enumerate(pairs):
        if len(p.question) < cfg.min_question_chars:
            dropped["too_short"] += 1
            continue
        if len(p.question) > cfg.max_question_chars or len(p.answer) > cfg.max_answer_chars:
            dropped["too_long"] += 1
            continue
        if repeats_question(p.question, p.answer):
            dropped["answer_repeats_question"] += 1
            continue
        if wh_fragment(p.question, p.answer):
            dropped["wh_fragment"] += 1
            continue
        support = _support(p.answer, chunk.text)
        if support < cfg.support_threshold:
            dropped["unsupported_answer"] += 1
            continue
        key, family = keys[n], p.parent or p.qid
        if key in seen_exact:
            dropped["duplicate"] += 1
            continue
        similarity = near.best(key.split(), family=family)
        if similarity >= cfg.near_duplicate_threshold:
            dropped["near_duplicate"] += 1
            continue
        seen_exact.add(key)
        near.add(n, family)
        kept.append((chunk, p))
        if scores is not None:
            scores[(chunk.id, p.qid)] = {"support": round(support, 3), "max_similarity": round(similarity, 3)}
    return kept, dropped


def filter_imports(rows: list[dict], cfg: DatasetConfig, dropped: Counter) -> list[dict]:
    """Imported rows pass the length and exact-duplicate filters (they have no chunk to check against)."""
    kept, seen = [], set()
    for row in rows:
        key = " ".join(_norm_tokens(row["question"]))
        if len(row["question"]) < cfg.min_question_chars:
            dropped["too_short"] += 1
        elif len(row["question"]) > cfg.max_question_chars or len(row["answer"]) > cfg.max_answer_chars:
            dropped["too_long"] += 1
        elif key in seen:
            dropped["duplicate"] += 1
        else:
            seen.add(key)
            kept.append(row)
    return kept


def round_trip_filter(pairs: list[tuple[Chunk, QAPair]], search: Callable[[list[str], int], list[list[Source]]],
                      k: int, *, scores: dict | None = None, known: dict | None = None, show_progress: bool = False,
                      batch: int = 256) -> tuple[list, int, dict]:
    """Keep pairs whose question finds its own chunk in the top k of the real index.

    A question that retrieves other chunks would teach the `combined` adapter to answer
    from the wrong context, and is usually too vague to answer closed-book either. A
    neighbouring chunk of the same document that holds the whole answer (chunk overlap)
    counts as found. `search` answers a batch of questions; `known` holds ranks from an
    earlier run on the same index, by (chunk id, question id), which are not searched
    again. Returns the kept pairs, how many were dropped, and every rank (0: not found).
    """
    from framework.runtime.progress import track

    ranks = {(c.id, p.qid): known[(c.id, p.qid)] for c, p in pairs if (c.id, p.qid) in (known or {})}
    todo = [(c, p) for c, p in pairs if (c.id, p.qid) not in ranks]
    batches = [todo[i:i + batch] for i in range(0, len(todo), batch)]
    for part in track(batches, f"round-trip retrieval ({len(todo)} questions)", enabled=show_progress):
        for (chunk, p), hits in zip(part, search([p.question for _, p in part], k)):
            answer = p.answer.rstrip(".")
            ranks[(chunk.id, p.qid)] = next((r for r, s in enumerate(hits, 1) if s.chunk_id == chunk.id or
                                                (s.doc_id == chunk.doc_id and answer in s.text)), 0)
    kept = [(c, p) for c, p in pairs if ranks[(c.id, p.qid)]]
    if scores is not None:
        for c, p in kept:
            scores.setdefault((c.id, p.qid), {})["round_trip_rank"] = ranks[(c.id, p.qid)]
    return kept, len(pairs) - len(kept), ranks


def check_size(n_train: int, dropped: Counter, generated: int, minimum: int) -> None:
    if n_train < minimum:
        raise DatasetTooSmallError(
            f"only {n_train} training examples left (dataset.min_examples={minimum}): generated {generated}, "
            f"dropped {dict(dropped)}. Ingest more documents, check dataset.audience and the sources' acl, "
            "or loosen the dataset filters."
        )
