"""The statistics of an A/B report: each arm's mean with its interval, each arm against the control, and the
sample-ratio check. Closed-form tests from scipy, so the numbers can be checked by hand.

- a **rate** (every value 0 or 1: thumbs up, resolved): the Wilson score interval per arm; the difference
  to the control with the unpooled normal (Wald) interval and the two-proportion z-test (pooled), whose
  p-value equals the chi-square test of the 2x2 table without continuity correction;
- a **mean** (a rating, latency, tokens): the Student t interval per arm; the difference with Welch's
  t-test (unequal variances) and its interval on the Welch-Satterthwaite degrees of freedom;
- **sample ratio mismatch**: the chi-square goodness-of-fit test of units per arm against the configured
  weights, flagged below p = 0.001. A flagged experiment's assignment or logging is broken (an arm that
  errors, a filter upstream, weights changed mid-way); its differences cannot be trusted.

Example:
    >>> round(mean_interval([3.0, 4.0, 5.0]).high, 4)
    6.4841
    >>> sample_ratio({"a": 450, "b": 550}, {"a": 1, "b": 1}).flagged
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

SRM_THRESHOLD = 0.001


def _r(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


@dataclass(frozen=True)
class Interval:
    """A mean (or rate) over `n` observations and its interval (None with too few observations)."""

    value: float | None
    low: float | None
    high: float | None
    n: int

    def to_dict(self) -> dict:
        return {"value": _r(self.value), "low": _r(self.low), "high": _r(self.high), "n": self.n}


@dataclass(frozen=True)
class Difference:
    """arm minus control, its interval and the two-sided p-value of the test named in `test`."""

    value: float | None
    low: float | None
    high: float | None
    p_value: float | None
    test: str

    def to_dict(self) -> dict:
        return {"value": _r(self.value), "low": _r(self.low), "high": _r(self.high), "p_value": _r(self.p_value),
                "test": self.test}


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean +- t(n-1) * s / sqrt(n)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return Interval(None, None, None, 0)
    if len(x) < 2:
        return Interval(float(x.mean()), None, None, 1)
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return Interval(float(x.mean()), float(x.mean()) - half, float(x.mean()) + half, len(x))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval: unlike p +- z*se it stays inside [0, 1] and works for p near 0 or 1."""
    if n == 0:
        return Interval(None, None, None, 0)
    z, p = _z(confidence), successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(p, centre - half, centre + half, n)


def welch(arm: Sequence[float], control: Sequence[float], confidence: float = 0.95) -> Difference:
    """Welch's t-test of the means (scipy) and its interval for arm - control."""
    a, c = np.asarray(arm, dtype=float), np.asarray(control, dtype=float)
    if len(a) < 2 or len(c) < 2:
        return Difference(_mean_diff(a, c), None, None, None, "welch")
    if a.var(ddof=1) == 0 and c.var(ddof=1) == 0:  # no spread: the test is undefined
        return Difference(float(a.mean() - c.mean()), None, None, 1.0 if a.mean() == c.mean() else None, "welch")
    result = stats.ttest_ind(a, c, equal_var=False)
    ci = result.confidence_interval(confidence)
    return Difference(float(a.mean() - c.mean()), float(ci.low), float(ci.high), float(result.pvalue), "welch")


def _mean_diff(a: np.ndarray, c: np.ndarray) -> float | None:
    return float(a.mean() - c.mean()) if len(a) and len(c) else None


def two_proportion(successes: int, n: int, control_successes: int, control_n: int,
                   confidence: float = 0.95) -> Difference:
    """The two-proportion z-test (pooled standard error) and the unpooled interval of the difference of rates."""
    if n == 0 or control_n == 0:
        return Difference(None, None, None, None, "two_proportion")
    p1, p0 = successes / n, control_successes / control_n
    pooled = (successes + control_successes) / (n + control_n)
    se_test = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / control_n))
    p_value = float(2 * stats.norm.sf(abs(p1 - p0) / se_test)) if se_test > 0 else 1.0
    half = _z(confidence) * math.sqrt(p1 * (1 - p1) / n + p0 * (1 - p0) / control_n)
    return Difference(p1 - p0, p1 - p0 - half, p1 - p0 + half, p_value, "two_proportion")


@dataclass(frozen=True)
class SampleRatio:
    """Units per arm against the shares the weights promise; `flagged` below `threshold`."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float | None
    p_value: float | None
    flagged: bool
    threshold: float = SRM_THRESHOLD

    def to_dict(self) -> dict:
        return {"observed": self.observed, "expected": {k: _r(v) for k, v in self.expected.items()},
                "chi2": _r(self.chi2), "p_value": _r(self.p_value), "flagged": self.flagged,
                "threshold": self.threshold}


def sample_ratio(observed: Mapping[str, int], weights: Mapping[str, float],
                 threshold: float = SRM_THRESHOLD) -> SampleRatio:
    """Chi-square goodness of fit of `observed` units per arm to `weights` (scipy.stats.chisquare)."""
    total, weight = sum(observed.get(a, 0) for a in weights), sum(weights.values())
    expected = {a: total * w / weight for a, w in weights.items()}
    counts = {a: int(observed.get(a, 0)) for a in weights}
    if total == 0:
        return SampleRatio(counts, expected, None, None, False, threshold)
    chi2, p = stats.chisquare(list(counts.values()), f_exp=list(expected.values()))
    return SampleRatio(counts, expected, float(chi2), float(p), bool(p < threshold), threshold)
