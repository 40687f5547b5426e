"""Evaluation runs: the modes side by side on the same questions, retrieval alone, confidence.

- `evaluate`: every mode answers every question as the same principal; scores per mode
  (and per split kind on a dataset's eval split).
- `compare`: one question in every mode, a refused mode (no adapter, audience) is a row
  that says why.
- `evaluate_retrieval`: hit@k, recall@k and MRR against gold documents, no generation.
- `calibrate`: fits retrieval confidence (framework.retrieval.confidence) on questions
  with gold documents and saves it beside the index.

The CLI and the Python API call these same functions and write the same reports.

Example:
    >>> result = evaluate(router, rows, modes=("rag", "combined"), principal=Principal(groups=("staff",)))  # doctest: +SKIP
    >>> result.scores("rag")["token_f1"]                                                                # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from framework.adapters.registry import AdapterError
from framework.evaluation.metrics import load_questions, retrieval_metrics, score, score_by_split_kind
from framework.evaluation.report import write_report
from framework.records import ANSWER_MODES, Answer, Principal
from framework.retrieval.confidence import Calibration, top_score
from framework.retrieval.retriever import Retriever
from framework.runtime.progress import track
from framework.serving.router import Router
from framework.workspace import Workspace


@dataclass(frozen=True)
class ModeResult:
    """One mode's scores on the question set, with every answer."""

    mode: str
    scores: Mapping[str, Any]
    answers: tuple[Answer, ...] = ()

    def to_dict(self) -> dict:
        return {**self.scores, "answers": [a.to_dict() for a in self.answers]}


@dataclass(frozen=True)
class EvaluationResult:
    """Every mode's result on the same questions, and where the report was written."""

    results: tuple[ModeResult, ...]
    report: Path | None = None

    def scores(self, mode: str) -> Mapping[str, Any]:
        return next(r.scores for r in self.results if r.mode == mode)

    def to_dict(self) -> dict:
        return {r.mode: r.to_dict() for r in self.results}


@dataclass(frozen=True)
class Comparison:
    """One question answered in each mode; `refused` says why a mode could not answer."""

    question: str
    answers: Mapping[str, Answer] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"question": self.question, "answers": {m: a.to_dict() for m, a in self.answers.items()},
                "refused": dict(self.refused)}


def evaluate(router: Router, rows: Sequence[dict], *, modes: Sequence[str] = ANSWER_MODES,
             principal: Principal = Principal(), show_progress: bool = False,
             report: tuple[Workspace, str, dict | None] | None = None) -> EvaluationResult:
    """Score each mode on the same questions (rows with `question`, `answer`, optional `document`).

    With `report` = (workspace, title, extra sections), also write the markdown + JSON report there."""
    results = []
    for mode in track(list(modes), f"evaluate {len(rows)} questions", enabled=show_progress):
        start = time.perf_counter()
        answers = router.answer([r["question"] for r in rows], mode=mode, principal=principal)
        scores = {**score(answers, list(rows), time.perf_counter() - start), **score_by_split_kind(answers, list(rows))}
        results.append(ModeResult(mode=mode, scores=scores, answers=tuple(answers)))
    result = EvaluationResult(results=tuple(results))
    if report is None:
        return result
    workspace, title, extra = report
    md, _ = write_report(workspace, title, result.to_dict(), extra)
    return EvaluationResult(results=result.results, report=md)


def compare(router: Router, question: str, *, principal: Principal = Principal(),
            modes: Sequence[str] = ANSWER_MODES) -> Comparison:
    """One question in each mode, side by side; a mode that is refused for this principal is reported."""
    answers, refused = {}, {}
    for mode in modes:
        try:
            answers[mode] = router.answer([question], mode=mode, principal=principal)[0]
        except (AdapterError, PermissionError) as err:
            refused[mode] = str(err)
    return Comparison(question=question, answers=answers, refused=refused)


def question_rows(questions: Path | Sequence[dict] | None, *, eval_split: Path) -> list[dict]:
    """A question file (JSONL), a list of rows, or (None) the dataset's eval split at `eval_split`."""
    if questions is None:
        if not eval_split.is_file():
            raise FileNotFoundError(f"no eval split at {eval_split}; run `ragtune synth` or pass --questions")
        questions = eval_split
    return load_questions(Path(questions)) if isinstance(questions, (str, Path)) else list(questions)


def gold_document(row: dict) -> str | list | None:
    return row.get("document") or row.get("doc_id")


def _require_readable(retriever: Retriever, principal: Principal) -> None:
    if not retriever.readable_by(principal):
        raise PermissionError(f"user {principal.user!r} (groups {list(principal.groups)}) may read no chunk of "
                              "the index; score as a user who may read the documents (--group)")


def evaluate_retrieval(retriever: Retriever, rows: Sequence[dict], *, ks: tuple[int, ...] = (1, 3, 5, 10),
                       principal: Principal = Principal()) -> dict:
    """hit@k and MRR of the configured retrieval against each question's gold document, no generation."""
    rows = [r for r in rows if gold_document(r)]
    if not rows:
        raise ValueError("no question names its gold document ('document' or 'doc_id'); nothing to score")
    _require_readable(retriever, principal)
    start = time.perf_counter()
    retrieved = [retriever.retrieve(r["question"], principal=principal, k=max(ks)) for r in rows]
    seconds = time.perf_counter() - start
    metrics = retrieval_metrics(retrieved, [gold_document(r) for r in rows], ks)
    return {**metrics, "retrieval": retriever.cfg.retrieval, "ms_per_query": round(1000 * seconds / len(rows), 2)}


def calibrate(retriever: Retriever, rows: Sequence[dict], *, path: Path, principal: Principal = Principal(),
              show_progress: bool = False) -> dict:
    """Fit retrieval confidence on questions with gold documents (or `document: []`, nothing answers
    them: negatives), save it at `path`, and return the fit."""
    rows = [r for r in rows if gold_document(r) or r.get("document") == []]
    _require_readable(retriever, principal)
    k = retriever.cfg.top_k
    scores, hits = [], []
    for row in track(rows, f"calibrate on {len(rows)} questions", enabled=show_progress):
        sources = retriever.retrieve(row["question"], principal=principal, k=k)
        gold = gold_document(row)
        hit = bool(gold) and retrieval_metrics([sources], [gold], (k,))[f"hit@{k}"] == 1.0
        scores.append(top_score(sources) if sources else -1.0)
        hits.append(int(hit))
    cal = Calibration.fit(scores, hits, k=k, embedder=retriever.embedder.name, retrieval=retriever.cfg.retrieval)
    cal.save(path)
    return {**asdict(cal), "path": str(path)}
