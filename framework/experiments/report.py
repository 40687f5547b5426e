"""`ragtune ab report NAME`: per arm exposures, units and every outcome with its interval; each arm against
the control; the sample-ratio check; report.md, report.json and a chart per outcome.

An observation is one request (an exposure) with that outcome recorded; a request with none is left out
of that outcome (its coverage column says how many had one). Requests of one user are correlated, so when
units ask more than once, `per_unit=True` (`--per-unit`) takes one observation per unit instead: the mean
of its requests (rates then become per-user means, compared with Welch's t). The exposure log's own numbers,
latency and tokens, are compared the same way as guardrails. Units are counted by their arm; a unit seen
in two arms (weights or salt changed while it ran) is counted in each and reported as a crossover.

Example:
    >>> report = build_report(cfg.experiments[0], store.exposures("greeting"),  # doctest: +SKIP
    ...                       store.outcomes("greeting"))
    >>> report.srm.flagged                                                     # doctest: +SKIP
    False
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Mapping, Sequence

from framework.config import ExperimentConfig
from framework.experiments.stats import (
    Difference,
    Interval,
    SampleRatio,
    mean_interval,
    sample_ratio,
    two_proportion,
    welch,
    wilson_interval,
)
from framework.experiments.store import Exposure

GUARDRAILS = ("latency_s", "prompt_tokens", "completion_tokens")


@dataclass(frozen=True)
class ArmSummary:
    name: str
    mode: str | None  # the configured mode; None for an arm logged but no longer configured
    weight: float | None
    exposures: int
    units: int
    adapters: tuple[str, ...]  # the adapter versions its answers were made with


@dataclass(frozen=True)
class Metric:
    """One outcome (or guardrail) across arms: `kind` rate or mean, each arm's interval, arm - control."""

    name: str
    kind: str
    source: str  # "outcome" (recorded feedback) or "exposure" (latency and tokens from the log)
    arms: dict[str, Interval]
    vs_control: dict[str, Difference]
    coverage: dict[str, float]  # share of the arm's exposures with a value


@dataclass(frozen=True)
class ExperimentReport:
    experiment: str
    control: str
    created_at: str
    arms: tuple[ArmSummary, ...]
    metrics: tuple[Metric, ...]
    srm: SampleRatio
    crossover_units: int
    notes: tuple[str, ...]
    per_unit: bool = False

    def to_dict(self) -> dict:
        return {"experiment": self.experiment, "control": self.control, "created_at": self.created_at,
                "observation": "unit" if self.per_unit else "request",
                "arms": [a.__dict__ | {"adapters": list(a.adapters)} for a in self.arms],
                "metrics": [{"name": m.name, "kind": m.kind, "source": m.source,
                             "arms": {k: v.to_dict() for k, v in m.arms.items()},
                             "vs_control": {k: v.to_dict() for k, v in m.vs_control.items()},
                             "coverage": {k: round(v, 4) for k, v in m.coverage.items()}} for m in self.metrics],
                "srm": self.srm.to_dict(), "crossover_units": self.crossover_units, "notes": list(self.notes)}


def _metric(name: str, source: str, values: Mapping[str, list[float]], exposures: Mapping[str, int],
            control: str) -> Metric:
    rate = all(v in (0.0, 1.0) for vs in values.values() for v in vs)
    arms = {a: wilson_interval(int(sum(vs)), len(vs)) if rate else mean_interval(vs) for a, vs in values.items()}
    base = values.get(control, [])
    vs_control = {a: two_proportion(int(sum(vs)), len(vs), int(sum(base)), len(base)) if rate else welch(vs, base)
                  for a, vs in values.items() if a != control}
    coverage = {a: len(vs) / exposures[a] if exposures.get(a) else 0.0 for a, vs in values.items()}
    return Metric(name, "rate" if rate else "mean", source, arms, vs_control, coverage)


def _observations(rows: Iterable[tuple[str, str, float]], order: Sequence[str],
                  per_unit: bool) -> dict[str, list[float]]:
    """(arm, unit, value) rows as values per arm: each row, or (`per_unit`) each unit's mean."""
    out: dict[str, list[float]] = {a: [] for a in order}
    grouped: dict[tuple[str, str], list[float]] = defaultdict(list)
    for arm, unit, value in rows:
        if per_unit:
            grouped[(arm, unit)].append(value)
        else:
            out[arm].append(value)
    for (arm, _), values in grouped.items():
        out[arm].append(sum(values) / len(values))
    return out


def build_report(cfg: ExperimentConfig, exposures: Sequence[Exposure], outcomes: Mapping[tuple[str, str], float],
                 *, per_unit: bool = False, now: datetime | None = None) -> ExperimentReport:
    """The report of one experiment from its exposure log and its latest outcomes per (request, name);
    `per_unit`: one observation per unit (the mean of its requests) instead of one per request."""
    configured = [a.name for a in cfg.arms]
    logged = sorted({e.arm for e in exposures} - set(configured))
    order = configured + logged
    by_arm: dict[str, list[Exposure]] = {a: [] for a in order}
    for e in exposures:
        by_arm[e.arm].append(e)
    units = {a: {e.unit_id for e in es} for a, es in by_arm.items()}
    counts = {a: len(es) for a, es in by_arm.items()}
    settings = {a.name: a for a in cfg.arms}
    arms = tuple(ArmSummary(a, getattr(settings.get(a), "mode", None), getattr(settings.get(a), "weight", None),
                            counts[a], len(units[a]), tuple(sorted({e.adapter for e in by_arm[a] if e.adapter})))
                 for a in order)
    served = {e.request_id: e for e in exposures}
    names = sorted({name for _, name in outcomes})
    base = {a: len(units[a]) for a in order} if per_unit else counts  # what coverage is a share of
    metrics = []
    for n in names:
        rows = [(served[r].arm, served[r].unit_id, v) for (r, name), v in outcomes.items() if name == n]
        metrics.append(_metric(n, "outcome", _observations(rows, order, per_unit), base, cfg.control_arm))
    for g in GUARDRAILS:
        rows = [(e.arm, e.unit_id, float(getattr(e, g))) for e in exposures if getattr(e, g) is not None]
        if rows:
            metrics.append(_metric(g, "exposure", _observations(rows, order, per_unit), base, cfg.control_arm))
    seen: dict[str, set[str]] = defaultdict(set)
    for e in exposures:
        seen[e.unit_id].add(e.arm)
    crossovers = sum(1 for arms_of_unit in seen.values() if len(arms_of_unit) > 1)
    srm = sample_ratio({a: len(units[a]) for a in configured}, {a.name: a.weight for a in cfg.arms})
    created = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    notes = tuple(_notes(arms, srm, crossovers, logged, per_unit))
    return ExperimentReport(cfg.name, cfg.control_arm, created, arms, tuple(metrics), srm, crossovers, notes, per_unit)


def _notes(arms: Sequence[ArmSummary], srm: SampleRatio, crossovers: int, logged: Sequence[str],
           per_unit: bool) -> list[str]:
    notes = []
    if srm.flagged:
        notes.append(f"SAMPLE RATIO MISMATCH: units per arm {srm.observed} do not fit the weights (chi-square "
                     f"p = {srm.p_value:.2g} < {srm.threshold}). Assignment or logging is broken for some users "
                     "(an arm that fails, a filter, weights changed mid-way); do not trust the differences below.")
    if crossovers:
        notes.append(f"{crossovers} units were served in more than one arm: the weights, the arms' order or the "
                     "salt changed while the experiment ran; start a new experiment (a new salt) for a clean read.")
    if logged:
        notes.append(f"arms {', '.join(logged)} are in the log but no longer configured; they are not in the "
                     "sample-ratio check.")
    repeat = [a.name for a in arms if a.units and a.exposures > a.units]
    if repeat and not per_unit:
        notes.append("units asked more than once (arms " + ", ".join(repeat) + "): requests of one user are "
                     "correlated, so intervals over requests are somewhat narrower than they should be; "
                     "`--per-unit` takes one observation per user.")
    return notes
