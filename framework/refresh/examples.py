"""The examples a refresh trains on and the questions it evaluates with.

Training: every row the serving version never trained on (a row of a new or changed chunk,
or one whose question was held out before: the split is drawn again over the whole set; a
question it trained on stays learned whatever its row's mode), plus
a seeded replay sample (`refresh.replay`, a share) of the rows it did train on, so a
warm-started adapter rehearses what did not change instead of drifting away from it. Rows of
changed or deleted chunks are not in the new dataset version at all: they leave the training set.

Evaluation: the new version's eval split, each question marked `changed` (its chunk is new
or changed: the answer is the new one) or `unchanged`; questions the adapters trained on,
sampled on both sides (`refresh.changed_questions`, `refresh.unchanged_questions`): on
changed facts they ask for the new answer the serving version never learned, on unchanged
ones they catch forgetting; and the rows of `refresh.questions`, in their own split kinds.

Changed facts: a changed question whose answer the serving version's dataset also holds, worded
the same but for a few words ("28 days" -> "29 days"), carries those words as `old_value` and
`new_value`; the gate judges it by whether an answer states the new value and not the old one
(framework.refresh.gate), since token F1 barely moves when one number in a sentence is wrong.
A question that itself contains the new value ("Must receipts be submitted within 29 days?")
gives the answer away and is not asked.

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
from framework.text import content_words

CHANGED, UNCHANGED, FILE_KIND = "changed", "unchanged", "questions"
MAX_VALUE_WORDS = 4  # more words differing than this is a rewritten statement, not one changed value


def changed_value(new_answer: str, old_answer: str) -> tuple[list[str], list[str]] | None:
    """The words only the old answer has and those only the new one has, when the two state the same thing with
    a value changed (most words shared, at most MAX_VALUE_WORDS differing on each side); else None.

    Example:
        >>> changed_value("Every employee receives 29 days of leave.", "Every employee receives 28 days of leave.")
        (['28'], ['29'])
    """
    new, old = content_words(new_answer), content_words(old_answer)
    gone, came = [w for w in dict.fromkeys(old) if w not in new], [w for w in dict.fromkeys(new) if w not in old]
    shared = len(set(new) & set(old))
    if not came or len(came) > MAX_VALUE_WORDS or len(gone) > MAX_VALUE_WORDS or shared < max(len(came), len(gone)):
        return None
    return gone, came


def states_value(answer: str, value: Sequence[str]) -> bool:
    """Whether `answer` contains every word of `value` (whole words: "29" is not in "290")."""
    said = set(content_words(answer))
    return bool(value) and all(w in said for w in value)


def _with_fact(row: dict, old_rows: Sequence[dict]) -> dict | None:
    """A changed question with its old and new value where the serving version's rows tell them (the same
    question, else the most similar answer of the same document); None where the question gives the new value
    away."""
    same_doc = [r for r in old_rows if r.get("doc_id") == row.get("doc_id")]
    same = [r for r in same_doc if r["question"] == row["question"]]  # asked before: only its answer tells
    facts = [f for r in same or same_doc if r.get("answer") and (f := changed_value(row["answer"], r["answer"]))]
    if not facts:
        return row
    old, new = min(facts, key=lambda f: len(f[0]) + len(f[1]))
    if any(w in set(content_words(row["question"])) for w in new):
        return None
    return {**row, "old_value": " ".join(old), "new_value": " ".join(new)}


def row_identity(row: dict) -> tuple:
    """What makes a training row the same fact in two dataset versions: its chunk and question. Not its mode:
    synthesis draws which questions also get a RAFT (`combined`) row over the whole set, so adding a document
    redraws them, and a question the adapter learned closed-book is not new because it now has context."""
    return row_key(row), row["question"]


def training_rows(rows: Sequence[dict], *, learned: set[tuple] | None, new: set[str] | frozenset[str],
                  replay: float, seed: int) -> tuple[list[dict], dict]:
    """Rows new to the serving version plus a replay sample of the others, in file order; the counts.
    `learned`: the identities of the rows it trained on; None (its dataset version is gone): every row of
    an unchanged chunk counts as learned."""
    fresh = [(row_identity(r) not in learned) if learned is not None else (row_key(r) in new) for r in rows]
    rest = [i for i, is_new in enumerate(fresh) if not is_new]
    counts = example_counts(sum(fresh), len(rest), replay=replay, warm_start=True)
    picked = set(random.Random(seed).sample(rest, counts["replay"]))
    chosen = [r for i, r in enumerate(rows) if fresh[i] or i in picked]
    return chosen, {k: counts[k] for k in ("new", "replay", "unchanged")}


def example_counts(new: int, unchanged: int, *, replay: float, warm_start: bool) -> dict:
    """How many examples a refresh trains on: every new one, and of the `unchanged` ones a `replay` share when
    it warm-starts, all of them when it trains from scratch. The one rule `ragtune refresh` and its dry run
    (framework.refresh.dry_run) count with, so the plan says what the run trains.

    Example:
        >>> example_counts(30, 43, replay=0.2, warm_start=True)
        {'new': 30, 'replay': 9, 'unchanged': 43, 'trained': 39}
    """
    replayed = round(replay * unchanged) if warm_start else unchanged
    return {"new": new, "replay": replayed, "unchanged": unchanged, "trained": new + replayed}


def removed_rows(rows: Sequence[dict], gone: set[str] | frozenset[str]) -> int:
    """How many rows of the previous version came from chunks that are gone."""
    return sum(row_key(r) in gone for r in rows)


def _question(row: dict, kind: str) -> dict:
    return {"question": row["question"], "answer": row["answer"], "doc_id": row.get("doc_id"), "split_kind": kind}


def _facts(rows: list[dict], old_rows: Sequence[dict]) -> list[dict]:
    out = [_with_fact(r, old_rows) if r["split_kind"] == CHANGED else r for r in rows]
    return [r for r in out if r is not None]


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
                    unchanged: int, seed: int, extra: Sequence[dict] = (), old: Sequence[dict] = ()) -> list[dict]:
    """The questions candidate and serving version answer; see the module docstring. `old`: the rows of the
    serving version's dataset (train and eval), which tell a changed fact's old value."""
    rng = random.Random(seed)
    rows = [_question(r, CHANGED if row_key(r) in new else UNCHANGED) for r in evals if r.get("mode", "finetuned")
            == "finetuned"]
    asked = {r["question"] for r in rows}
    rows += _trained(train, new, asked, CHANGED, changed, rng) + _trained(train, new, asked, UNCHANGED, unchanged, rng)
    return _facts(rows, old) + [{**r, "split_kind": r.get("split_kind") or FILE_KIND} for r in extra]
