"""Chat rows for training and evaluation, in the prompts the router serves with.

Every pair becomes a closed-book row (`finetuned` mode); a `raft.fraction` of them also a
`combined` row following RAFT (Zhang et al. 2024): the oracle chunk with probability p
among hard-negative distractors retrieved from the same index. Every row carries its
lineage: chunk, document version, fact and question ids, filter scores.

Example:
    >>> text_hash("hello")
    '2cf24dba5fb0a30e'
"""

from __future__ import annotations

import hashlib
import random
from typing import Callable, Sequence

from framework import prompts
from framework.config import RaftConfig
from framework.records import Chunk, QAPair, Source

SCORE_KEYS = ("support", "max_similarity", "round_trip_rank")
ROW_DEFAULTS = {"chunk_id": None, "chunk_hash": None, "doc_id": None, "doc_hash": None, "fact_id": None,
                "question_id": None, "parent_id": None, "split_kind": "train", "source_line": None}


def _example(chunk: Chunk, p: QAPair, mode: str, messages: list[dict], generator: str, scores: dict) -> dict:
    return {
        "messages": messages + [{"role": "assistant", "content": p.answer}],
        "mode": mode,
        "question": p.question,
        "answer": p.answer,
        "chunk_id": chunk.id,
        "chunk_hash": text_hash(chunk.text),
        "doc_id": chunk.doc_id,
        "doc_hash": chunk.doc_hash,
        "generator": f"{generator}:{p.kind}",
        "fact_id": hashlib.sha256(p.fact.encode()).hexdigest()[:12],
        "question_id": p.qid,
        "parent_id": p.parent,
        "scores": scores.get((chunk.id, p.qid), {}),
    }


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def raft_context(chunk: Chunk, question: str, retrieve: Callable[[str, int], list[Source]], *, k: int,
                 oracle_probability: float, rng: random.Random) -> list[Source]:
    """k chunks: the oracle (with probability p) plus hard negatives from the same index, shuffled."""
    distractors = [s for s in retrieve(question, k + 1) if s.chunk_id != chunk.id]
    oracle = Source(chunk_id=chunk.id, doc_id=chunk.doc_id, title=chunk.title, uri=chunk.uri,
                    score=1.0, text=chunk.text)
    context = ([oracle] if rng.random() < oracle_probability else []) + distractors
    context = context[:k]
    rng.shuffle(context)
    return context


def uniform_row(row: dict) -> dict:
    """Every row with the same keys and score keys, so `datasets` reads train and eval with one schema."""
    scores = {k: (row.get("scores") or {}).get(k) for k in SCORE_KEYS}
    return {**ROW_DEFAULTS, **row, "scores": scores}


def format_examples(pairs: list[tuple[Chunk, QAPair]], *, generator: str, raft: RaftConfig, retrieve, rng: random.Random, scores: dict | None = None,
                    split_kinds: Sequence[str] | None = None) -> list[dict]:
    """Chat rows: each pair closed-book, and a `raft.fraction` of them also with context chunks."""
    out = []
    for i, (chunk, p) in enumerate(pairs):
        row = _example(chunk, p, "finetuned", prompts.closed_book(p.question), generator, scores or {})
        if split_kinds is not None:
            row["split_kind"] = split_kinds[i]
        out.append(row)
        if raft.fraction and rng.random() < raft.fraction:
            ctx = raft_context(chunk, p.question, retrieve, k=raft.context_chunks,
                               oracle_probability=raft.oracle_probability, rng=rng)
            out.append(_example(chunk, p, "combined", prompts.with_context(p.question, ctx), generator, scores or {}))
    return out


def raw_text_rows(chunks: Sequence[Chunk], share: float, *, seed: int) -> list[dict]:
    """Plain-text rows for about `share` of the chunks (chosen by a hash of chunk id and seed).

    The passage itself is the answer, prompted by its title and first words; these rows
    carry no question, fact or scores, and count as `raw_text` in the card.
    """
    if share <= 0:
        return []
    out = []
    for chunk in chunks:
        draw = int(hashlib.sha256(f"{seed}:{chunk.id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        text = chunk.text.strip()
        if draw >= share or not text:
            continue
        start = " ".join(text.split()[:8])
        pair = QAPair(start, text, "raw_text", f"raw:{chunk.id}")
        out.append(_example(chunk, pair, "finetuned", prompts.raw_text(chunk.title, start), "extractive", {}))
        out[-1]["generator"] = "raw_text"
    return out
