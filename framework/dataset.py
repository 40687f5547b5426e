"""Build the finetuning set from the indexed chunks: generate, filter, split, format, write.

Each filter counts what it drops, and the counts go into `card.json`, so an empty or
thin set is explained rather than silent. The split holds out one phrasing of some
facts for evaluation while the fact's other phrasings are trained: eval then measures
whether the adapter learned the fact, not the wording. `combined` examples follow RAFT
(Zhang et al. 2024): the oracle chunk with probability p among hard-negative
distractors retrieved from the same index, in the prompt the router serves with.

Example:
    >>> card = build_dataset(chunks, cfg.dataset, out_dir, retrieve=..., generate=...)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from framework import prompts
from framework.records import PUBLIC_GROUP, Source
from framework.synth import QAPair

log = logging.getLogger(__name__)

class DatasetTooSmallError(RuntimeError):
    """The filters left too few examples to train on."""


def _norm_tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def readable_by_audience(acl: Sequence[str], audience: Sequence[str]) -> bool:
    """Weights cannot enforce ACLs: train only on what every audience group may read."""
    return PUBLIC_GROUP in acl or (bool(audience) and set(audience) <= set(acl))


def filter_pairs(pairs: list[tuple[dict, QAPair]], cfg) -> tuple[list[tuple[dict, QAPair]], Counter]:
    """Length, grounding, exact- and near-duplicate filters; returns kept pairs and drop counts."""
    dropped: Counter = Counter()
    kept: list[tuple[dict, QAPair]] = []
    seen_exact: set[str] = set()
    seen_sets: list[set[str]] = []
    for chunk, p in pairs:
        if len(p.question) < cfg.min_question_chars:
            dropped["too_short"] += 1
            continue
        if len(p.question) > cfg.max_question_chars or len(p.answer) > cfg.max_answer_chars:
            dropped["too_long"] += 1
            continue
        answer_tokens = set(_norm_tokens(p.answer))
        support = len(answer_tokens & set(_norm_tokens(chunk["text"]))) / max(1, len(answer_tokens))
        if support < 0.8:
            dropped["unsupported_answer"] += 1
            continue
        key = " ".join(_norm_tokens(p.question))
        if key in seen_exact:
            dropped["duplicate"] += 1
            continue
        tokens = set(key.split())
        if any(len(tokens & s) / max(1, len(tokens | s)) >= cfg.near_duplicate_threshold for s in seen_sets):
            dropped["near_duplicate"] += 1
            continue
        seen_exact.add(key)
        seen_sets.append(tokens)
        kept.append((chunk, p))
    return kept, dropped


def split_pairs(pairs: list[tuple[dict, QAPair]], eval_fraction: float, seed: int):
    """Hold out one phrasing of a fraction of the facts that have at least two.

    When no fact has two phrasings (e.g. the llm generator's one pair per chunk), whole
    facts are held out instead: eval then asks about facts the adapter never saw.
    """
    by_fact: dict[str, list[int]] = defaultdict(list)
    for i, (_, p) in enumerate(pairs):
        by_fact[p.fact].append(i)
    candidates = sorted(f for f, idx in by_fact.items() if len(idx) >= 2)
    rng = random.Random(seed)
    n_eval = round(eval_fraction * len(by_fact))
    if not candidates and n_eval:
        log.warning("no fact has two phrasings; holding out %d whole facts for evaluation", n_eval)
        held = {i for f in rng.sample(sorted(by_fact), n_eval) for i in by_fact[f]}
    else:
        held = {rng.choice(by_fact[f]) for f in rng.sample(candidates, min(n_eval, len(candidates)))}
    train = [x for i, x in enumerate(pairs) if i not in held]
    evals = [x for i, x in enumerate(pairs) if i in held]
    return train, evals


def _example(chunk: dict, p: QAPair, mode: str, messages: list[dict], generator: str) -> dict:
    return {
        "messages": messages + [{"role": "assistant", "content": p.answer}],
        "mode": mode,
        "question": p.question,
        "answer": p.answer,
        "chunk_id": chunk["id"],
        "doc_id": chunk["doc_id"],
        "doc_hash": chunk["doc_hash"],
        "generator": f"{generator}:{p.kind}",
        "fact_id": hashlib.sha256(p.fact.encode()).hexdigest()[:12],
    }


def raft_context(chunk: dict, question: str, retrieve: Callable[[str, int], list[Source]], *, k: int,
                 oracle_probability: float, rng: random.Random) -> list[Source]:
    """k chunks: the oracle (with probability p) plus hard negatives from the same index, shuffled."""
    distractors = [s for s in retrieve(question, k + 1) if s.chunk_id != chunk["id"]]
    oracle = Source(chunk_id=chunk["id"], doc_id=chunk["doc_id"], title=chunk["title"], uri=chunk["uri"],
                    score=1.0, text=chunk["text"])
    context = ([oracle] if rng.random() < oracle_probability else []) + distractors
    context = context[:k]
    rng.shuffle(context)
    return context


def format_examples(pairs, *, generator: str, raft, retrieve, rng: random.Random) -> list[dict]:
    out = []
    for chunk, p in pairs:
        out.append(_example(chunk, p, "finetuned", prompts.closed_book(p.question), generator))
        if raft.fraction and rng.random() < raft.fraction:
            ctx = raft_context(chunk, p.question, retrieve, k=raft.context_chunks,
                               oracle_probability=raft.oracle_probability, rng=rng)
            out.append(_example(chunk, p, "combined", prompts.with_context(p.question, ctx), generator))
    return out


def write_dataset(out_dir: Path, train: list[dict], evals: list[dict], card: dict) -> dict:
    """Write train.jsonl, eval.jsonl and card.json into out_dir, replacing it atomically.

    Returns the card as written, with the dataset's hash and creation time."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    for name, rows in (("train.jsonl", train), ("eval.jsonl", evals)):
        with open(tmp / name, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    digest = hashlib.sha256((tmp / "train.jsonl").read_bytes() + (tmp / "eval.jsonl").read_bytes()).hexdigest()
    card = {**card, "hash": digest, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (tmp / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return card


def build_card(cfg, *, chunks: int, eligible: int, generated: int, dropped: Counter, kept: list,
               train: list[dict], evals: list[dict]) -> dict:
    """What card.json says: counts per filter, split and mode, the documents used, the config."""
    return {
        "name": cfg.name,
        "generator": cfg.generator,
        "audience": list(cfg.audience),
        "chunks": {"total": chunks, "eligible": eligible},
        "generated": generated,
        "dropped": dict(dropped),
        "kept": len(kept),
        "split": {"train": len(train), "eval": len(evals),
                  "train_by_mode": {m: sum(r["mode"] == m for r in train) for m in ("finetuned", "combined")}},
        "documents": dict(sorted({(c["doc_id"], c["doc_hash"]) for c, _ in kept})),
        "config": cfg.model_dump(),
    }


def check_size(n_train: int, dropped: Counter, generated: int, minimum: int) -> None:
    if n_train < minimum:
        raise DatasetTooSmallError(
            f"only {n_train} training examples left (dataset.min_examples={minimum}): generated {generated}, "
            f"dropped {dict(dropped)}. Ingest more documents, check dataset.audience and the sources' acl, "
            "or loosen the dataset filters."
        )
