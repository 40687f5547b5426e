"""Gates: conditions on an evaluation that decide pass or fail (CI, promotions).

A condition compares two sides with `>=`, `>`, `<=`, `<`, `==` or `!=`; each side is a
sum of numbers and names (`+` and `-`). A name is `<row>.<metric>`, optionally followed
by `.delta` (the row minus the baseline, paired on the same questions) and by `.low`,
`.high` or `.value` (a bound of the 95% interval; the value by default):

    combined.token_f1 >= rag.token_f1
    rag.groundedness >= 0.8
    combined.token_f1.low > rag.token_f1.high - 0.02
    combined.token_f1.delta.low > 0              # better than the baseline beyond the noise
    finetuned@v0004.token_f1 >= finetuned@v0003.token_f1

The grammar is parsed by hand (never `eval`): a typo is a `GateError` naming the
condition and the column, raised before any question is answered. A condition on a
metric that is n/a, or on a refused row, fails and says why.

Example:
    >>> from framework.evaluation.results import EvaluationResult, ModeResult
    >>> from framework.evaluation.stats import Estimate
    >>> rag = ModeResult(label="rag", mode="rag", metrics={"token_f1": Estimate(0.30, 0.25, 0.35, 40)})
    >>> gates = check_gates(EvaluationResult(results=(rag,)), ["rag.token_f1.low >= 0.3"])
    >>> gates.passed, gates.checks[0].margin
    (False, -0.05)
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from framework.evaluation.results import METRICS, EvaluationResult, GateCheck, GateResult

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne}
FIELDS = ("value", "low", "high")
# A name may hold '-' before a letter (adapter names: combined@eval-hr@v0002); spaces around operators keep it apart.
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?|\.\d+)|(?P<name>[A-Za-z_](?:[\w@.]|-(?=[A-Za-z_]))*)|"
                    r"(?P<op>>=|<=|==|!=|>|<)|(?P<sign>[+-]))")
EXAMPLE = 'e.g. "combined.token_f1 >= rag.token_f1" or "rag.groundedness.low >= 0.8"'


class GateError(ValueError):
    """A condition that cannot be parsed, or names a row or metric the evaluation does not have."""


@dataclass(frozen=True)
class Operand:
    number: float | None = None
    label: str = ""
    metric: str = ""
    delta: bool = False
    field: str = "value"

    @property
    def name(self) -> str:
        return ".".join([self.label, self.metric] + ["delta"] * self.delta + [self.field] * (self.field != "value"))


@dataclass(frozen=True)
class Condition:
    text: str
    left: tuple[tuple[int, Operand], ...]  # (sign, operand) terms summed
    op: str
    right: tuple[tuple[int, Operand], ...]

    @property
    def operands(self) -> list[Operand]:
        return [o for _, o in self.left + self.right if o.number is None]


def _name(text: str, name: str, column: int) -> Operand:
    parts = name.split(".")
    at = max((i for i, p in enumerate(parts) if p in METRICS and i > 0), default=None)
    if at is None:
        raise GateError(f"gate {text!r}: {name!r} (column {column}) names no metric; write <row>.<metric> with a "
                        f"metric among {', '.join(METRICS)}; {EXAMPLE}")
    rest = parts[at + 1:]
    delta = bool(rest) and rest[0] == "delta"
    rest = rest[delta:]
    if len(rest) > 1 or (rest and rest[0] not in FIELDS):
        raise GateError(f"gate {text!r}: unknown suffix {'.'.join(rest)!r} after {'.'.join(parts[:at + 1])!r} "
                        f"(column {column}); use .delta and/or .low, .high or .value")
    return Operand(label=".".join(parts[:at]), metric=parts[at], delta=delta, field=rest[0] if rest else "value")


def parse_condition(text: str) -> Condition:
    """One condition, parsed; a `GateError` says what is wrong and where."""
    sides: list[list[tuple[int, Operand]]] = [[]]
    ops: list[str] = []
    pos, sign, signed, expect_term = 0, 1, False, True
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            at = len(text) - len(text[pos:].lstrip())
            raise GateError(f"gate {text!r}: unexpected {text[at]!r} at column {at + 1}; {EXAMPLE}")
        column, pos = m.start(m.lastgroup) + 1, m.end()
        kind, value = m.lastgroup, m.group(m.lastgroup)
        if kind in ("num", "name") and expect_term:
            term = Operand(number=float(value)) if kind == "num" else _name(text, value, column)
            sides[-1].append((sign, term))
            sign, signed, expect_term = 1, False, False
        elif kind == "sign" and not signed:  # binary after a term, unary (once) before one
            sign, signed, expect_term = (-1 if value == "-" else 1) * (sign if expect_term else 1), True, True
        elif kind == "op" and not expect_term and not ops:
            ops.append(value)
            sides.append([])
            expect_term = True
        else:
            raise GateError(f"gate {text!r}: unexpected {value!r} at column {column}; {EXAMPLE}")
    if expect_term and ops:
        raise GateError(f"gate {text!r}: ends where a number or a name is expected; {EXAMPLE}")
    if len(ops) != 1 or expect_term:
        raise GateError(f"gate {text!r}: a condition is two sides and one comparison ({', '.join(OPS)}); {EXAMPLE}")
    return Condition(text=text.strip(), left=tuple(sides[0]), op=ops[0], right=tuple(sides[1]))


def parse_conditions(conditions: Iterable[str], *, labels: Sequence[str] | None = None) -> list[Condition]:
    """Parse every condition; with `labels`, also check that each names a row the run will have."""
    parsed = [parse_condition(c) for c in conditions]
    if labels is not None:
        _check_labels(parsed, labels)
    return parsed


def _check_labels(conditions: Sequence[Condition], labels: Sequence[str]) -> None:
    for c in conditions:
        unknown = [o.label for o in c.operands if o.label not in labels]
        if unknown:
            raise GateError(f"gate {c.text!r}: no row {unknown[0]!r} in this evaluation; rows: {', '.join(labels)} "
                            "(choose them with --modes and --adapters)")


def _value(result: EvaluationResult, o: Operand) -> tuple[float | None, str]:
    if o.number is not None:
        return o.number, ""
    row = result.mode(o.label)
    if row.refused:
        return None, f"{o.label} was refused: {row.refused}"
    est = result.difference(o.label, o.metric) if o.delta else result.estimate(o.label, o.metric)
    value = est.field(o.field)
    if value is None:
        why = f"no paired difference against the baseline {result.baseline}" if o.delta else "n/a for this row"
        return None, f"{o.name} has no value ({why})"
    return value, ""


def _side(result: EvaluationResult, terms) -> tuple[float | None, str]:
    total = 0.0
    for sign, o in terms:
        value, why = _value(result, o)
        if value is None:
            return None, why
        total += sign * value
    return total, ""


def check(result: EvaluationResult, condition: Condition) -> GateCheck:
    (left, why_l), (right, why_r) = _side(result, condition.left), _side(result, condition.right)
    if left is None or right is None:
        return GateCheck(condition.text, False, left, right, reason=why_l or why_r)
    passed = OPS[condition.op](round(left, 10), round(right, 10))
    margin = round(left - right, 10)
    verdict = f"{left:.4f} {condition.op} {right:.4f}" if passed else f"{left:.4f} is not {condition.op} {right:.4f}"
    return GateCheck(condition.text, passed, left, right, margin, f"{verdict} (left - right = {margin:+.4f})")


def check_gates(result: EvaluationResult, conditions: Sequence[str | Condition]) -> GateResult:
    """Check every condition on `result` (strings are parsed; a bad one raises `GateError`)."""
    parsed = [c if isinstance(c, Condition) else parse_condition(c) for c in conditions]
    _check_labels(parsed, result.labels)
    return GateResult(checks=tuple(check(result, c) for c in parsed))
