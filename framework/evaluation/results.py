"""Typed results of an evaluation run: per mode, per group, paired against a baseline.

A row of the run is a *label*: the mode (`rag`), or the mode with a pinned adapter version
(`finetuned@v0003`) when versions are compared side by side. Every metric is an `Estimate`
(value and bootstrap interval); a metric that does not apply (groundedness without
retrieval) is n/a: an Estimate whose value is None. A refused row (no adapter, audience)
carries `refused` and no metrics.

Example:
    >>> row = ModeResult(label="rag", mode="rag", metrics={"token_f1": Estimate(0.5, 0.4, 0.6, 40)})
    >>> EvaluationResult(results=(row,), questions=40).estimate("rag", "token_f1").low
    0.4
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from framework.evaluation.stats import NA, Estimate
from framework.records import Answer

# metric -> what it is; the order of every table. Definitions: framework/evaluation/metrics.py.
METRICS: dict[str, str] = {
    "token_f1": "token F1 with the reference",
    "answer_recall": "share of the reference's content words in the answer",
    "new_word_recall": "answer recall on the reference's words not in the question",
    "key_span": "share of answers holding the reference's key span (number, date, name) the question does not",
    "semantic_similarity": "embedder cosine of answer and reference",
    "groundedness": "share of the answer's content words found in the retrieved chunks",
    "repetition_rate": "share of the answer's 4-grams repeating an earlier one",
    "abstention_rate": "share of questions answered with the abstention text",
    "truncation_rate": "share of answers cut off by generator.max_new_tokens",
    "retrieval_hit": "share of questions with a gold source among the retrieved chunks (hit@top_k)",
    "retrieval_mrr": "mean reciprocal rank of the first gold chunk",
    "latency_p50_s": "median seconds per question (answered in batches)",
    "latency_p95_s": "95th percentile of seconds per question",
    "tokens_per_s": "generated tokens per second of answering (retrieval and prompt included)",
}
LOWER_IS_BETTER = frozenset({"repetition_rate", "abstention_rate", "truncation_rate", "latency_p50_s",
                             "latency_p95_s"})
ALL = None  # the split-kind key of scores over every question


def _metrics_dict(metrics: Mapping[str, Estimate]) -> dict:
    return {name: metrics.get(name, NA).to_dict() for name in METRICS if name in metrics}


@dataclass(frozen=True)
class ModeResult:
    """One row: its answers, the per-question scores, and the metrics overall and per split kind."""

    label: str
    mode: str
    metrics: Mapping[str, Estimate] = field(default_factory=dict)
    by_split_kind: Mapping[str, Mapping[str, Estimate]] = field(default_factory=dict)
    answers: tuple[Answer, ...] = ()
    per_question: tuple[Mapping[str, float | None], ...] = ()
    adapter: str | None = None
    refused: str | None = None

    def to_dict(self) -> dict:
        return {"label": self.label, "mode": self.mode, "adapter": self.adapter, "refused": self.refused,
                "questions": len(self.answers), "metrics": _metrics_dict(self.metrics),
                "by_split_kind": {k: {"questions": next(iter(m.values()), NA).n, "metrics": _metrics_dict(m)}
                                  for k, m in self.by_split_kind.items()},
                "answers": [{**a.to_dict(), "scores": dict(s)} for a, s in zip(self.answers, self.per_question)]}


@dataclass(frozen=True)
class PairedDifference:
    """`label` minus `baseline` on the same questions (all, or one split kind), per metric."""

    label: str
    baseline: str
    metrics: Mapping[str, Estimate]
    split_kind: str | None = ALL

    def to_dict(self) -> dict:
        return {"label": self.label, "baseline": self.baseline, "split_kind": self.split_kind,
                "metrics": _metrics_dict(self.metrics)}


@dataclass(frozen=True)
class GateCheck:
    """One condition's verdict; `margin` = left - right (how far past, or short of, the threshold)."""

    condition: str
    passed: bool
    left: float | None = None
    right: float | None = None
    margin: float | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        r = (lambda x: None if x is None else round(x, 4))
        return {"condition": self.condition, "passed": self.passed, "left": r(self.left), "right": r(self.right),
                "margin": r(self.margin), "reason": self.reason}


@dataclass(frozen=True)
class GateResult:
    """The verdicts of gate conditions (framework.evaluation.gate); passed when every one passed."""

    checks: tuple[GateCheck, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[GateCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "checks": [c.to_dict() for c in self.checks]}


@dataclass(frozen=True)
class EvaluationResult:
    """Every row's result on the same questions, the paired differences against the baseline,
    the gate verdict (when conditions were given) and where the report was written."""

    results: tuple[ModeResult, ...]
    questions: int = 0
    baseline: str | None = None
    comparisons: tuple[PairedDifference, ...] = ()
    gates: GateResult | None = None
    confidence: float = 0.95
    resamples: int = 2000
    report: Path | None = None  # reports/<timestamp>/report.md; report.json, questions.csv and charts beside it

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(r.label for r in self.results)

    def mode(self, label: str) -> ModeResult:
        for r in self.results:
            if r.label == label:
                return r
        raise KeyError(f"no row {label!r} in this evaluation; rows: {', '.join(self.labels)}")

    def scores(self, label: str) -> dict[str, float | None]:
        """The point values of a row's metrics (None: n/a)."""
        return {name: est.value for name, est in self.mode(label).metrics.items()}

    def estimate(self, label: str, metric: str, split_kind: str | None = ALL) -> Estimate:
        row = self.mode(label)
        metrics = row.metrics if split_kind is ALL else row.by_split_kind.get(split_kind, {})
        return metrics.get(metric, NA)

    def difference(self, label: str, metric: str, split_kind: str | None = ALL) -> Estimate:
        """`label` minus the baseline on `metric`: NA when not compared (the baseline itself, a refused row)."""
        for c in self.comparisons:
            if c.label == label and c.split_kind == split_kind:
                return c.metrics.get(metric, NA)
        return NA

    def to_dict(self) -> dict:
        return {"questions": self.questions, "baseline": self.baseline, "confidence": self.confidence,
                "resamples": self.resamples,
                "results": {r.label: r.to_dict() for r in self.results},
                "comparisons": [c.to_dict() for c in self.comparisons],
                "gates": self.gates.to_dict() if self.gates else None}
