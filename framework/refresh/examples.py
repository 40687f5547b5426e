"""The examples a refresh trains on and the questions it evaluates with.

Training: every row the serving version never trained on (a row of a new or changed chunk,
or one whose question was held out before: the split is drawn again over the whole set), plus
a seeded replay sample (`refresh.replay`, a share) of the rows it did train on, so a
warm-started adapter rehearses what did not change instead of drifting away from it. Rows of
changed or deleted chunks are not in the new dataset version at all: they leave the training set.

Evaluation: the new version's eval split, each question marked `changed` (its chunk is new
or changed: the answer is the new one) or `unchanged`; questions the adapters trained on,
sampled on both sides (`refresh.changed_questions`, `refresh.unchanged_questions`): on
changed facts they ask for the new answer the serving version never learned, on unchanged
ones they catch forgetting; and the rows of `refresh.questions`, in their own split kinds.

Example:
    >>> rows = [{"doc_id": "d", "chunk_hash": "new", "question": "q1"},
    ...         {"doc_id": "d", "chunk_hash": "old", "question": "q2"}]
    >>> chosen, counts = training_rows(rows, learned={row_identity(rows[1])}, new=set(), replay=0.0, seed=0)
    >>> [r["question"] for r in chosen], counts
    (['q1'], {'new': 1, 'replay': 0, 'unchanged': 1})
"""

from __future__ import annotations

import random
from typing import Sequence

from framework.dataset.delta import row_key

CHANGED, UNCHANGED, FILE_KIND = "changed", "unchanged", "questions"


def row_identity(row: dict) -> tuple:
    """What makes a training row the same in two dataset versions: its chunk, question and mode."""
    return row_key(row), row["question"], row.get("mode")


def training_rows(rows: Sequence[dict], *, learned: set[tuple] | None, new: set[str] | frozenset[str],
                  replay: float, seed: int) -> tuple[list[dict], dict]:
    """Rows new to the serving version plus a replay sample of the others, in file order; the counts.
    `learned`: the identities of the rows it trained on; None (its dataset version is gone): every row of
    an unchanged chunk counts as learned."""
    fresh = [(row_identity(r) not in learned) if learned is not None else (row_key(r) in new) for r in rows]
    rest = [i for i, is_new in enumerate(fresh) if not is_new]
    picked = set(random.Random(seed).sample(rest, round(replay * len(rest))))
    chosen = [r for i, r in enumerate(rows) if fresh[i] or i in picked]
    return chosen, {"new": sum(fresh), "replay": len(picked), "unchanged": len(rest)}


def removed_rows(rows: Sequence[dict], gone: set[str] | frozenset[str]) -> int:
    """How many rows of the previous version came from chunks that are gone."""
    return sum(row_key(r) in gone for r in rows)


def _question(row: dict, kind: str) -> dict:
    return {"question": row["question"], "answer": row["answer"], "doc_id": row.get("doc_id"), "split_kind": kind}


def _trained(train: Sequence[dict], new: set[str] | frozenset[str], skip: set[str], kind: str, limit: int,
             rng: random.Random) -> list[dict]:
    """Up to `limit` closed-book questions of training rows on one side, one per question."""
    pool = {}
    for r in train:
        key = row_key(r)
        if r.get("mode") == "finetuned" and key and (key in new) == (kind == CHANGED) and r["question"] not in skip:
            pool.setdefault(r["question"], r)
    picked = sorted(rng.sample(sorted(pool), min(limit, len(pool))))
    return [_question(pool[q], kind) for q in picked]


def evaluation_rows(train: Sequence[dict], evals: Sequence[dict], new: set[str] | frozenset[str], *, changed: int,
                    unchanged: int, seed: int, extra: Sequence[dict] = ()) -> list[dict]:
    """The questions candidate and serving version answer; see the module docstring."""
    rng = random.Random(seed)
    rows = [_question(r, CHANGED if row_key(r) in new else UNCHANGED) for r in evals if r.get("mode", "finetuned")
            == "finetuned"]
    asked = {r["question"] for r in rows}
    rows += _trained(train, new, asked, CHANGED, changed, rng) + _trained(train, new, asked, UNCHANGED, unchanged, rng)
    return rows + [{**r, "split_kind": r.get("split_kind") or FILE_KIND} for r in extra]
