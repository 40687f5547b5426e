"""The refresh gate: conditions on the candidate against the serving version, before any promotion.

A refresh evaluates two rows, the serving version and the candidate (`finetuned@support@v0003`
and `finetuned@support@v0004`), whose names are not known when the config is written. So
its conditions use roles, and split kinds after an `@`:

    candidate.token_f1 >= serving.token_f1 - 0.02           # all questions
    candidate@unchanged.token_f1.delta.high >= 0            # not worse beyond the noise on unchanged facts
    candidate@changed.token_f1 >= serving@changed.token_f1  # at least as good on the changed ones

`.delta` is the candidate minus the serving version, paired on the same questions. The
grammar, the metrics and the verdicts are those of framework.evaluation.gate; the rows
are a view of the evaluation: one per role and split kind. A condition on a split kind
that has no question in this refresh (`changed` when documents were only deleted) is not
checked, and says so.

Example:
    >>> [c.text for c in parse_refresh_gate(["candidate@changed.token_f1 >= 0.5"], kinds=["changed"])]
    ['candidate@changed.token_f1 >= 0.5']
"""

from __future__ import annotations

from typing import Iterable, Sequence

from framework.evaluation.gate import Condition, GateError, check, parse_conditions
from framework.evaluation.results import EvaluationResult, GateCheck, GateResult, ModeResult, PairedDifference

ROLES = ("candidate", "serving")


def labels(kinds: Iterable[str]) -> list[str]:
    """Every row name a refresh condition may use."""
    return [*ROLES, *(f"{role}@{kind}" for role in ROLES for kind in kinds)]


def parse_refresh_gate(conditions: Sequence[str], *, kinds: Iterable[str]) -> list[Condition]:
    """Parse the conditions and check their row names before any work (a `GateError` says what is wrong)."""
    allowed = labels(kinds)
    parsed = parse_conditions(conditions)
    for c in parsed:
        unknown = [o.label for o in c.operands if o.label not in allowed]
        if unknown:
            raise GateError(f"refresh.gate {c.text!r}: no row {unknown[0]!r}; a refresh compares the rows "
                            f"{', '.join(allowed)} (candidate or serving, optionally @ a split kind)")
    return parsed


def gate_view(result: EvaluationResult, *, candidate: str, serving: str) -> EvaluationResult:
    """The evaluation with its two rows renamed to their roles, and one more row per role and split kind."""
    pair = [result.mode(candidate), result.mode(serving)]
    kinds = sorted({kind for row in pair for kind in row.by_split_kind})  # a refused row has none of its own
    rows = []
    for role, row in zip(ROLES, pair):
        rows.append(ModeResult(label=role, mode=row.mode, metrics=row.metrics, refused=row.refused))
        rows += [ModeResult(label=f"{role}@{kind}", mode=row.mode, metrics=row.by_split_kind.get(kind, {}),
                            refused=row.refused) for kind in kinds]
    pairs = [PairedDifference(label=ROLES[0] if c.split_kind is None else f"{ROLES[0]}@{c.split_kind}",
                              baseline=ROLES[1] if c.split_kind is None else f"{ROLES[1]}@{c.split_kind}",
                              metrics=c.metrics)
             for c in result.comparisons if c.label == candidate and c.baseline == serving]
    return EvaluationResult(results=tuple(rows), questions=result.questions, baseline=ROLES[1],
                            comparisons=tuple(pairs), confidence=result.confidence, resamples=result.resamples)


def check_refresh_gate(result: EvaluationResult, conditions: Sequence[Condition], *, candidate: str,
                       serving: str) -> GateResult:
    """Each condition's verdict on the view; one naming a split kind without questions is not checked."""
    view = gate_view(result, candidate=candidate, serving=serving)
    refused = next((f"{r.label} was refused: {r.refused}" for r in view.results if r.refused), None)
    checks = []
    for c in conditions:
        missing = sorted({o.label for o in c.operands if o.label not in view.labels})
        if missing and refused:
            checks.append(GateCheck(c.text, False, reason=refused))
        elif missing:
            kind = missing[0].partition("@")[2]
            checks.append(GateCheck(c.text, True, reason=f"not checked: no {kind} questions in this refresh"))
        else:
            checks.append(check(view, c))
    return GateResult(checks=tuple(checks))


__all__ = ["GateError", "ROLES", "check_refresh_gate", "gate_view", "labels", "parse_refresh_gate"]
