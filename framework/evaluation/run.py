"""Evaluation runs: the modes side by side on the same questions, retrieval alone, confidence.

- `evaluate`: every row (a mode, or a mode with a pinned adapter version) answers every
  question as the same principal; per-question scores, metrics with bootstrap intervals
  overall and per split kind, paired differences against a baseline row, optional gates,
  and the report. A row refused for this principal (no adapter, audience) says why and
  the others still run.
- `compare`: one question in every mode, a refused mode (no adapter, audience) is a row
  that says why.
- `evaluate_retrieval`: hit@k, recall@k and MRR against gold sources, no generation.
- `calibrate`: fits retrieval confidence (framework.retrieval.confidence) on questions
  with gold sources and saves it beside the index.

The CLI and the Python API call these same functions and write the same reports.

Example:
    >>> result = evaluate(router, rows, modes=("rag", "combined"), principal=Principal(groups=("staff",)),  # doctest: +SKIP
    ...                   gates=["combined.token_f1 >= rag.token_f1"])
    >>> result.estimate("combined", "token_f1").low, result.gates.passed                           # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from framework.adapters.registry import AdapterError, parse_spec
from framework.evaluation.gate import check_gates, parse_conditions
from framework.evaluation.gold import GOLD_FIELDS, gold_sources, retrieval_metrics
from framework.evaluation.questions import load_questions
from framework.evaluation.report import write_report
from framework.evaluation.results import EvaluationResult, ModeResult, PairedDifference
from framework.evaluation.scoring import aggregate, paired, question_scores, split_kinds
from framework.records import ANSWER_MODES, MODE_TABLE, Answer, Principal
from framework.retrieval.confidence import Calibration, top_score
from framework.retrieval.retriever import Retriever
from framework.runtime.progress import track
from framework.serving.router import Router, check_mode
from framework.workspace import Workspace


@dataclass(frozen=True)
class Comparison:
    """One question answered in each mode; `refused` says why a mode could not answer."""

    question: str
    answers: Mapping[str, Answer] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"question": self.question, "answers": {m: a.to_dict() for m, a in self.answers.items()},
                "refused": dict(self.refused)}


@dataclass(frozen=True)
class Run:
    """One row to answer: its label, the mode, and the router (pinned to an adapter version or not)."""

    label: str
    mode: str
    router: Router


def pinned(router: Router, version: str, principal: Principal) -> Router:
    """The same router serving `version` (`v0003`, or `name@v0003`) of the principal's adapter."""
    cfg = router.cfg
    if "@" not in version:
        spec = next((cfg.group_adapters[g] for g in principal.groups if g in cfg.group_adapters), cfg.adapter)
        version = f"{parse_spec(spec)[0]}@{version}"
    try:
        parse_spec(version)
    except AdapterError as err:
        raise ValueError(f"--adapters: {err}") from None
    same = copy.copy(router)  # the same parts (worker, retriever, registry), another adapter rule
    same.cfg = cfg.model_copy(update={"adapter": version, "adapter_version": None, "group_adapters": {}})
    return same


def plan_runs(router: Router, modes: Sequence[str], adapters: Sequence[str], principal: Principal) -> list[Run]:
    """One row per mode; with `adapters`, one per version for each mode that uses the adapter."""
    if not modes:
        raise ValueError("no mode to evaluate; name some of prompt_only, rag, finetuned, combined, auto")
    runs = []
    for mode in dict.fromkeys(check_mode(m) for m in modes):
        if adapters and (mode == "auto" or MODE_TABLE[mode][1]):
            runs += [Run(f"{mode}@{v}", mode, pinned(router, v, principal)) for v in dict.fromkeys(adapters)]
        else:
            runs.append(Run(mode, mode, router))
    return runs


def _baseline(baseline: str | None, labels: Sequence[str]) -> str:
    if baseline is None:
        return "rag" if "rag" in labels else labels[0]
    if baseline not in labels:
        raise ValueError(f"baseline {baseline!r} is not among the evaluated rows ({', '.join(labels)}); "
                         "add its mode to --modes or choose another --baseline")
    return baseline


def _answer(run: Run, rows: Sequence[dict], principal: Principal, batch_size: int) -> list[Answer]:
    """Answers in batches, so each answer's latency is its batch's time over its questions."""
    out: list[Answer] = []
    for start in range(0, len(rows), batch_size):
        batch = [r["question"] for r in rows[start:start + batch_size]]
        out += run.router.answer(batch, mode=run.mode, principal=principal)
    return out


def _score(run: Run, rows: Sequence[dict], *, principal: Principal, embedder, batch_size: int, kw: dict) -> ModeResult:
    try:
        answers = _answer(run, rows, principal, batch_size)
    except (AdapterError, PermissionError) as err:
        return ModeResult(label=run.label, mode=run.mode, refused=str(err))
    scores = question_scores(answers, rows, embedder=embedder)
    kinds = {k: aggregate([scores[i] for i in idx], **kw) for k, idx in split_kinds(rows).items()}
    return ModeResult(label=run.label, mode=run.mode, metrics=aggregate(scores, **kw), by_split_kind=kinds,
                      answers=tuple(answers), per_question=tuple(scores),
                      adapter=next((a.adapter for a in answers if a.adapter), None))


def _comparisons(results: Sequence[ModeResult], baseline: str, rows: Sequence[dict], kw: dict):
    base = next(r for r in results if r.label == baseline)
    if base.refused:
        return ()
    kinds = split_kinds(rows)
    out = []
    for r in results:
        if r.label == baseline or r.refused:
            continue
        out.append(PairedDifference(r.label, baseline, paired(r.per_question, base.per_question, **kw)))
        for kind, idx in kinds.items():
            pick = (lambda scores: [scores[i] for i in idx])
            out.append(PairedDifference(r.label, baseline, paired(pick(r.per_question), pick(base.per_question), **kw),
                                        split_kind=kind))
    return tuple(out)


def evaluate(router: Router, rows: Sequence[dict], *, modes: Sequence[str] = ANSWER_MODES,
             adapters: Sequence[str] = (), baseline: str | None = None, gates: Sequence[str] = (),
             principal: Principal = Principal(), embedder=None, batch_size: int | None = None,
             confidence: float = 0.95, resamples: int = 2000, seed: int = 0, show_progress: bool = False,
             report: Workspace | None = None, title: str = "ragtune eval",
             extra: Mapping | None = None) -> EvaluationResult:
    """Score each row on the same questions (rows with `question`, `answer`, optional gold sources and
    `split_kind`), compare each with `baseline` (default: rag when evaluated, else the first row),
    check `gates` (framework.evaluation.gate), and with `report` write reports/<timestamp>/ there.

    `adapters` lists adapter versions to compare side by side; `embedder` scores semantic
    similarity (None: n/a). Bad modes, versions, baselines and gate conditions fail before any
    question is answered."""
    rows = list(rows)
    if not rows:
        raise ValueError("no questions to evaluate")
    runs = plan_runs(router, modes, adapters, principal)
    labels = [r.label for r in runs]
    baseline = _baseline(baseline, labels)
    conditions = parse_conditions(gates, labels=labels)
    kw = {"confidence": confidence, "resamples": resamples, "seed": seed}
    size = batch_size or getattr(router.generator, "batch_size", 8)
    results = [_score(run, rows, principal=principal, embedder=embedder, batch_size=size, kw=kw)
               for run in track(runs, f"evaluate {len(rows)} questions", enabled=show_progress)]
    result = EvaluationResult(results=tuple(results), questions=len(rows), baseline=baseline,
                              comparisons=_comparisons(results, baseline, rows, kw), confidence=confidence,
                              resamples=resamples)
    if conditions:
        result = dataclasses.replace(result, gates=check_gates(result, conditions))
    if report is not None:
        result = dataclasses.replace(result, report=write_report(report, result, rows, title=title, extra=extra))
    return result


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


def _require_readable(retriever: Retriever, principal: Principal) -> None:
    if not retriever.readable_by(principal):
        raise PermissionError(f"user {principal.user!r} (groups {list(principal.groups)}) may read no chunk of "
                              "the index; score as a user who may read the documents (--group)")


def evaluate_retrieval(retriever: Retriever, rows: Sequence[dict], *, ks: tuple[int, ...] = (1, 3, 5, 10),
                       principal: Principal = Principal()) -> dict:
    """hit@k and MRR of the configured retrieval against each question's gold document, no generation."""
    rows = [r for r in rows if gold_sources(r)]
    if not rows:
        raise ValueError("no question names its gold sources ('sources', 'document' or 'doc_id'); nothing to score")
    _require_readable(retriever, principal)
    start = time.perf_counter()
    retrieved = [retriever.retrieve(r["question"], principal=principal, k=max(ks)) for r in rows]
    seconds = time.perf_counter() - start
    metrics = retrieval_metrics(retrieved, [gold_sources(r) for r in rows], ks)
    return {**metrics, "retrieval": retriever.cfg.retrieval, "ms_per_query": round(1000 * seconds / len(rows), 2)}


def calibrate(retriever: Retriever, rows: Sequence[dict], *, path: Path, principal: Principal = Principal(),
              show_progress: bool = False) -> dict:
    """Fit retrieval confidence on questions with gold sources (or an empty list, nothing answers
    them: negatives), save it at `path`, and return the fit."""
    rows = [r for r in rows if gold_sources(r) or any(r.get(f) == [] for f in GOLD_FIELDS)]
    _require_readable(retriever, principal)
    k = retriever.cfg.top_k
    scores, hits = [], []
    for row in track(rows, f"calibrate on {len(rows)} questions", enabled=show_progress):
        sources = retriever.retrieve(row["question"], principal=principal, k=k)
        gold = gold_sources(row)
        hit = bool(gold) and retrieval_metrics([sources], [gold], (k,))[f"hit@{k}"] == 1.0
        scores.append(top_score(sources) if sources else -1.0)
        hits.append(int(hit))
    cal = Calibration.fit(scores, hits, k=k, embedder=retriever.embedder.name, retrieval=retriever.cfg.retrieval)
    cal.save(path)
    return {**asdict(cal), "path": str(path)}
