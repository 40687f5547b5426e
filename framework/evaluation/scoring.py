"""From answers to metrics: per-question scores, then estimates with bootstrap intervals.

Per question (one row of the per-question CSV): the text metrics of
framework.evaluation.metrics, `key_span` (the knowledge check's measure: does the answer hold
the reference's key span), `abstained` and `truncated` (0 or 1), the gold chunk's
`retrieval_rank` with `retrieval_hit` and `reciprocal_rank` (only for answers that
retrieved, on questions with gold sources), `latency_s` and `generated_tokens`.

Per row of the run: the mean of each score over the questions where it is defined, with a
bootstrap interval; latency p50 and p95 (bootstrap of the percentile); tokens per second as
total generated tokens over total seconds (bootstrap of the ratio).

Example:
    >>> est = aggregate([{"token_f1": 1.0, "latency_s": 1.0, "generated_tokens": 10},
    ...                  {"token_f1": 0.0, "latency_s": 3.0, "generated_tokens": 10}])
    >>> est["token_f1"].value, est["tokens_per_s"].value, est["groundedness"].value
    (0.5, 5.0, None)
"""

from __future__ import annotations

from typing import Mapping, Sequence

from framework.evaluation.gold import gold_rank, gold_sources
from framework.evaluation.metrics import (
    answer_recall,
    answer_recall_new_words,
    groundedness,
    repetition_rate,
    semantic_similarity,
    token_f1,
)
from framework.evaluation.stats import NA, Estimate, bootstrap_interval, paired_bootstrap, percentile, ratio_of_sums
from framework.records import MODE_TABLE, Answer
from framework.training.rewording import key_span, span_hit

# metric -> the per-question score it is the mean of
MEANS = {"token_f1": "token_f1", "answer_recall": "answer_recall", "new_word_recall": "new_word_recall",
         "key_span": "key_span",
         "semantic_similarity": "semantic_similarity", "groundedness": "groundedness",
         "repetition_rate": "repetition_rate", "abstention_rate": "abstained", "truncation_rate": "truncated",
         "retrieval_hit": "retrieval_hit", "retrieval_mrr": "reciprocal_rank"}
Scores = Mapping[str, float | None]


def key_span_recall(answer: str, reference: str, question: str) -> float | None:
    """1.0 when the answer holds the reference's key span (framework.training.rewording; the measure of the
    adapter's knowledge check), 0.0 when not, None when the reference has no span the question lacks."""
    span = key_span(reference, question)
    return None if span is None else float(span_hit(answer, span))


def _retrieved(answer: Answer) -> bool:
    return MODE_TABLE.get(answer.mode, (False, False))[0]


def question_scores(answers: Sequence[Answer], rows: Sequence[dict], *, embedder=None) -> list[dict]:
    """One dict of scores per question; `embedder` None leaves semantic similarity n/a."""
    sims = semantic_similarity([a.text for a in answers], [r["answer"] for r in rows], embedder=embedder) \
        if embedder is not None else [None] * len(answers)
    out = []
    for a, row, sim in zip(answers, rows, sims):
        gold, retrieved = gold_sources(row), _retrieved(a)
        rank = gold_rank(a.sources, gold) if retrieved and gold else None
        scored = retrieved and bool(gold)
        out.append({
            "token_f1": token_f1(a.text, row["answer"]),
            "answer_recall": answer_recall(a.text, row["answer"]),
            "new_word_recall": answer_recall_new_words(a.text, row["answer"], row["question"]),
            "key_span": key_span_recall(a.text, row["answer"], row["question"]),
            "semantic_similarity": sim,
            "groundedness": groundedness(a.text, [s.text for s in a.sources]) if retrieved and not a.abstained
            else None,
            "repetition_rate": repetition_rate(a.text),
            "abstained": float(a.abstained),
            "truncated": float(a.truncated),
            "retrieval_rank": rank,
            "retrieval_hit": float(rank is not None) if scored else None,
            "reciprocal_rank": (1 / rank if rank else 0.0) if scored else None,
            "latency_s": a.latency_s,
            "generated_tokens": a.generated_tokens,
        })
    return out


def aggregate(scores: Sequence[Scores], *, confidence: float = 0.95, resamples: int = 2000,
              seed: int = 0) -> dict[str, Estimate]:
    """Every metric of framework.evaluation.results.METRICS over these questions' scores."""
    kw = {"confidence": confidence, "resamples": resamples, "seed": seed}
    out = {m: bootstrap_interval([s[q] for s in scores if s.get(q) is not None], **kw) for m, q in MEANS.items()}
    latency = [s["latency_s"] for s in scores]
    out["latency_p50_s"] = bootstrap_interval(latency, statistic=percentile(50), **kw)
    out["latency_p95_s"] = bootstrap_interval(latency, statistic=percentile(95), **kw)
    pairs = [(s["generated_tokens"], s["latency_s"]) for s in scores]
    out["tokens_per_s"] = bootstrap_interval(pairs, statistic=ratio_of_sums, **kw) \
        if sum(p[1] for p in pairs) > 0 else NA
    return out


def paired(scores: Sequence[Scores], baseline: Sequence[Scores], *, confidence: float = 0.95,
           resamples: int = 2000, seed: int = 0) -> dict[str, Estimate]:
    """Each mean metric of `scores` minus `baseline`'s, on the questions where both are defined."""
    kw = {"confidence": confidence, "resamples": resamples, "seed": seed}
    return {m: paired_bootstrap([s.get(q) for s in scores], [b.get(q) for b in baseline], **kw)
            for m, q in MEANS.items()}


def split_kinds(rows: Sequence[dict]) -> dict[str, list[int]]:
    """Question indices per `split_kind` (the eval split's paraphrase / heldout_document, or a file's groups)."""
    kinds: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row.get("split_kind"):
            kinds.setdefault(row["split_kind"], []).append(i)
    return dict(sorted(kinds.items()))
