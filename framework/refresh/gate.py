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

Changed facts are judged by value, not by overlap: an answer that still says "28 days" where
the document now says "29 days" keeps a token F1 of 0.93. Where the refresh's questions carry
a changed fact's old and new value (framework.refresh.examples), the gate adds one check,
`changed facts`: the candidate states an old value on fewer of those questions than the serving
version did (or on none), and the new value without the old on more of them (on at least as
many where the serving version stated no old value either, as an adapter that never learned the
fact does).

Example:
    >>> [c.text for c in parse_refresh_gate(["candidate@changed.token_f1 >= 0.5"], kinds=["changed"])]
    ['candidate@changed.token_f1 >= 0.5']
"""

from __future__ import annotations

from typing import Iterable, Sequence

from framework.evaluation.gate import Condition, GateError, check, parse_conditions
from framework.evaluation.results import EvaluationResult, GateCheck, GateResult, ModeResult, PairedDifference
from framework.refresh.examples import states_value

ROLES = ("candidate", "serving")
FACT_CHECK = "changed facts: the candidate states the new value, not the old one"


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


def fact_counts(answers: Sequence, rows: Sequence[dict]) -> tuple[int, int, int]:
    """(questions with a changed fact, answers stating the new value without the old, answers stating the old)."""
    facts = [(a, r) for a, r in zip(answers, rows) if r.get("new_value")]
    old = sum(states_value(a.text, r["old_value"].split()) for a, r in facts)
    new = sum(states_value(a.text, r["new_value"].split()) and not states_value(a.text, r["old_value"].split())
              for a, r in facts)
    return len(facts), new, old


def check_facts(result: EvaluationResult, rows: Sequence[dict], *, candidate: str, serving: str) -> GateCheck | None:
    """The `changed facts` check (see the module docstring); None where no question carries a changed fact."""
    if not any(r.get("new_value") for r in rows):
        return None
    cand, serv = result.mode(candidate), result.mode(serving)
    if cand.refused or serv.refused:
        return GateCheck(FACT_CHECK, False, reason=f"refused: {cand.refused or serv.refused}")
    n, c_new, c_old = fact_counts(cand.answers, rows)
    _, s_new, s_old = fact_counts(serv.answers, rows)
    fewer_old = c_old < s_old or c_old == 0
    more_new = c_new > s_new if s_old else c_new >= s_new
    said = (f"of {n} changed-fact questions the candidate states the new value on {c_new} and the old on {c_old}; "
            f"the serving version: new {s_new}, old {s_old}")
    if fewer_old and more_new:
        return GateCheck(FACT_CHECK, True, left=c_new / n, right=s_new / n, margin=(c_new - s_new) / n, reason=said)
    why = "it states the old value on as many of them as the serving version, or more" if not fewer_old else \
        "it does not state the new value on more of them than the serving version"
    return GateCheck(FACT_CHECK, False, left=c_new / n, right=s_new / n, margin=(c_new - s_new) / n,
                     reason=f"{said}: {why}")


def check_refresh_gate(result: EvaluationResult, conditions: Sequence[Condition], *, candidate: str,
                       serving: str, rows: Sequence[dict] = ()) -> GateResult:
    """Each condition's verdict on the view; one naming a split kind without questions is not checked. With the
    questions (`rows`, in the evaluation's order), also the `changed facts` check."""
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
    facts = check_facts(result, rows, candidate=candidate, serving=serving)
    return GateResult(checks=tuple(checks) + ((facts,) if facts else ()))


__all__ = ["FACT_CHECK", "GateError", "ROLES", "check_facts", "check_refresh_gate", "gate_view", "labels", "parse_refresh_gate"]
