"""The finetuning set's pieces: filters, PII scrubbing, split, RAFT formatting, card.

Each filter counts what it drops, and the counts go into `card.json`, so an empty or
thin set is explained rather than silent. The split puts into `eval.jsonl` (a) one
paraphrase of some facts whose other phrasings are trained (does the adapter know
the fact?) and (b) every question of held-out documents, chosen by a hash of the
document id (does it generalize?); each eval row says which in `split_kind`.
`combined` examples follow RAFT (Zhang et al. 2024): the oracle chunk with
probability p among hard-negative distractors retrieved from the same index, in the
prompt the router serves with. framework.synthesis runs the pieces in order.

Example:
    >>> kept, dropped = filter_pairs(pairs, cfg.dataset)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Sequence

from framework import prompts
from framework.records import PUBLIC_GROUP, Source
from framework.dataset_store import resolve_dataset_dir
from framework.near_dup import JaccardIndex
from framework.synth import QAPair

log = logging.getLogger(__name__)

FILTERS = ("too_short", "too_long", "unsupported_answer", "duplicate", "near_duplicate", "round_trip", "pii")


def dataset_dir(workspace: Path, name: str, version: str | None = None) -> Path:
    """Where a dataset's train.jsonl, eval.jsonl and card.json are: its latest version unless one is named."""
    return resolve_dataset_dir(workspace / "datasets", name, version)


class DatasetTooSmallError(RuntimeError):
    """The filters left too few examples to train on."""


def _norm_tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def readable_by_audience(acl: Sequence[str], audience: Sequence[str]) -> bool:
    """Weights cannot enforce ACLs: train only on what every audience group may read."""
    return PUBLIC_GROUP in acl or (bool(audience) and set(audience) <= set(acl))


def _support(answer: str, chunk_text: str) -> float:
    answer_tokens = set(_norm_tokens(answer))
    return len(answer_tokens & set(_norm_tokens(chunk_text))) / max(1, len(answer_tokens))


def filter_pairs(pairs: list[tuple[dict, QAPair]], cfg,
                 scores: dict | None = None) -> tuple[list[tuple[dict, QAPair]], Counter]:
    """Length, grounding, exact- and near-duplicate filters; returns kept pairs and drop counts.

    Paraphrases of one question are not near duplicates of each other: they are meant
    to be close. `scores`, when given, receives each kept pair's support and similarity.
    """
    dropped: Counter = Counter()
    kept: list[tuple[dict, QAPair]] = []
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
        support = _support(p.answer, chunk["text"])
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
            scores[(chunk["id"], p.qid)] = {"support": round(support, 3), "max_similarity": round(similarity, 3)}
    return kept, dropped


def filter_imports(rows: list[dict], cfg, dropped: Counter) -> list[dict]:
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


def round_trip_filter(pairs: list[tuple[dict, QAPair]], search: Callable[[list[str], int], list[list[Source]]],
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
    from framework.progress import track

    ranks = {(c["id"], p.qid): known[(c["id"], p.qid)] for c, p in pairs if (c["id"], p.qid) in (known or {})}
    todo = [(c, p) for c, p in pairs if (c["id"], p.qid) not in ranks]
    batches = [todo[i:i + batch] for i in range(0, len(todo), batch)]
    for part in track(batches, f"round-trip retrieval ({len(todo)} questions)", enabled=show_progress):
        for (chunk, p), hits in zip(part, search([p.question for _, p in part], k)):
            answer = p.answer.rstrip(".")
            ranks[(chunk["id"], p.qid)] = next((r for r, s in enumerate(hits, 1) if s.chunk_id == chunk["id"] or
                                                (s.doc_id == chunk["doc_id"] and answer in s.text)), 0)
    kept = [(c, p) for c, p in pairs if ranks[(c["id"], p.qid)]]
    if scores is not None:
        for c, p in kept:
            scores.setdefault((c["id"], p.qid), {})["round_trip_rank"] = ranks[(c["id"], p.qid)]
    return kept, len(pairs) - len(kept), ranks


def heldout_documents(sizes: dict[str, int], fraction: float, seed: int) -> set[str]:
    """Documents whose every question goes to eval: about `fraction` of the chunks, by whole documents.

    Documents are taken in the order of a hash of their id (so the choice is
    deterministic and does not follow file names), skipping any that would overshoot
    the target share by half, since one large manual held out would empty the training
    set. `sizes` maps document id to its number of chunks. At least one document always
    stays for training.
    """
    total = sum(sizes.values())
    if fraction <= 0 or len(sizes) < 2 or not total:
        return set()
    target = fraction * total
    order = sorted(sizes, key=lambda d: hashlib.sha256(f"{seed}:{d}".encode()).hexdigest())
    held: set[str] = set()
    share = 0
    for doc in order[:-1]:
        if share >= target:
            break
        if share + sizes[doc] <= 1.5 * target or (not held and sizes[doc] <= 2 * target):
            held.add(doc)
            share += sizes[doc]
    return held


def split_pairs(pairs: list[tuple[dict, QAPair]], eval_fraction: float, seed: int, *,
                heldout_docs: set[str] = frozenset()):
    """Train pairs and eval (chunk, pair, split_kind) triples; see the module docstring.

    Among the facts of trained documents with at least two phrasings, a fraction gives
    one phrasing to eval, a paraphrase when it has one. When no fact has two
    phrasings (the llm generator without paraphrases), whole facts are held out
    instead (`heldout_fact`): eval then asks about facts the adapter never saw.
    """
    evals = [(c, p, "heldout_document") for c, p in pairs if c.get("doc_id") in heldout_docs]
    rest = [(c, p) for c, p in pairs if c.get("doc_id") not in heldout_docs]
    by_fact: dict[str, list[int]] = defaultdict(list)
    for i, (_, p) in enumerate(rest):
        by_fact[p.fact].append(i)
    candidates = sorted(f for f, idx in by_fact.items() if len(idx) >= 2)
    rng = random.Random(seed)
    n_eval = round(eval_fraction * len(by_fact))
    if not candidates and n_eval:
        log.warning("no fact has two phrasings; holding out %d whole facts for evaluation", n_eval)
        held = {i: "heldout_fact" for f in rng.sample(sorted(by_fact), n_eval) for i in by_fact[f]}
    else:
        held = {}
        for f in rng.sample(candidates, min(n_eval, len(candidates))):
            paraphrases = [i for i in by_fact[f] if rest[i][1].parent]
            held[rng.choice(paraphrases or by_fact[f])] = "paraphrase"
    train = [x for i, x in enumerate(rest) if i not in held]
    evals += [(c, p, held[i]) for i, (c, p) in enumerate(rest) if i in held]
    return train, evals


def _example(chunk: dict, p: QAPair, mode: str, messages: list[dict], generator: str, scores: dict) -> dict:
    return {
        "messages": messages + [{"role": "assistant", "content": p.answer}],
        "mode": mode,
        "question": p.question,
        "answer": p.answer,
        "chunk_id": chunk["id"],
        "chunk_hash": text_hash(chunk["text"]),
        "doc_id": chunk["doc_id"],
        "doc_hash": chunk["doc_hash"],
        "generator": f"{generator}:{p.kind}",
        "fact_id": hashlib.sha256(p.fact.encode()).hexdigest()[:12],
        "question_id": p.qid,
        "parent_id": p.parent,
        "scores": scores.get((chunk["id"], p.qid), {}),
    }


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


SCORE_KEYS = ("support", "max_similarity", "round_trip_rank")
ROW_DEFAULTS = {"chunk_id": None, "chunk_hash": None, "doc_id": None, "doc_hash": None, "fact_id": None,
                "question_id": None, "parent_id": None, "split_kind": "train", "source_line": None}


def uniform_row(row: dict) -> dict:
    """Every row with the same keys and score keys, so `datasets` reads train and eval with one schema."""
    scores = {k: (row.get("scores") or {}).get(k) for k in SCORE_KEYS}
    return {**ROW_DEFAULTS, **row, "scores": scores}


def format_examples(pairs, *, generator: str, raft, retrieve, rng: random.Random, scores: dict | None = None,
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


def build_card(cfg, *, chunks: int, eligible: int, generated: Counter, dropped: Counter, kept: list,
               train: list[dict], evals: list[dict], extra: dict) -> dict:
    """What card.json says: counts per generator, filter, split and mode, the documents used, the config."""
    return {
        "name": cfg.name,
        "generator": cfg.generator,
        "audience": list(cfg.audience),
        "chunks": {"total": chunks, "eligible": eligible},
        "generated": sum(generated.values()),
        "generated_by_generator": dict(sorted(generated.items())),
        "dropped": dict(dropped),
        "kept": len(kept),
        "kept_by_generator": dict(sorted(Counter(r["generator"] for r in train + evals
                                                 if r["mode"] == "finetuned").items())),
        "split": {"train": len(train), "eval": len(evals),
                  "train_by_mode": {m: sum(r["mode"] == m for r in train) for m in ("finetuned", "combined")},
                  "eval_by_kind": dict(sorted(Counter(r.get("split_kind", "") for r in evals).items()))},
        "documents": dict(sorted({(r["doc_id"], r["doc_hash"]) for r in train + evals if r["doc_id"]})),
        **extra,
        "config": cfg.model_dump(by_alias=True),
    }


def check_size(n_train: int, dropped: Counter, generated: int, minimum: int) -> None:
    if n_train < minimum:
        raise DatasetTooSmallError(
            f"only {n_train} training examples left (dataset.min_examples={minimum}): generated {generated}, "
            f"dropped {dict(dropped)}. Ingest more documents, check dataset.audience and the sources' acl, "
            "or loosen the dataset filters."
        )
