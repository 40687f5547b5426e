"""Bootstrap intervals: how far a score on a few dozen questions could move on another draw.

With 40 questions one answer moves a mean by 1/40 of its range, so a score without its
interval invites reading noise as a result. `bootstrap_interval` resamples the questions
with replacement and takes the percentile interval of the statistic; `paired_bootstrap`
resamples the same questions for two modes at once, so the interval is of their
difference on identical questions (much narrower than two separate intervals suggest,
because the hard questions are hard for both modes).

Both are pure and seeded: the same values give the same interval on every run, so the
CLI and the Python API agree to the digit.

Example:
    >>> est = bootstrap_interval([0.0, 1.0, 1.0, 1.0], resamples=1000)
    >>> est.value, est.n
    (0.75, 4)
    >>> 0.0 <= est.low <= est.value <= est.high <= 1.0
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]


def mean(samples: np.ndarray) -> np.ndarray:
    """The mean of each resample: (resamples, n) -> (resamples,)."""
    return samples.mean(axis=1)


def percentile(q: float) -> Statistic:
    """A statistic: the q-th percentile of each resample (q=50: the median)."""
    return lambda samples: np.percentile(samples, q, axis=1)


def ratio_of_sums(samples: np.ndarray) -> np.ndarray:
    """For (n, 2) values (numerator, denominator) per question: sum of column 0 / sum of column 1."""
    den = samples[..., 1].sum(axis=1)
    return np.divide(samples[..., 0].sum(axis=1), den, out=np.zeros_like(den, dtype=float), where=den > 0)


@dataclass(frozen=True)
class Estimate:
    """A statistic on all questions (`value`) with its bootstrap interval [`low`, `high`] over `n`
    questions; all None when no question has a value (a metric that does not apply: n/a)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0

    def field(self, name: str) -> float | None:
        """`value`, `low` or `high` by name (what a gate condition reads)."""
        if name not in ("value", "low", "high"):
            raise ValueError(f"unknown field {name!r} of an estimate; use value, low or high")
        return getattr(self, name)

    def to_dict(self) -> dict:
        r = (lambda x: None if x is None else round(x, 4))
        return {"value": r(self.value), "low": r(self.low), "high": r(self.high), "n": self.n}


NA = Estimate(value=None)


def _check(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} must be between 0 and 1 (0.95 for a 95% interval)")
    if resamples < 1:
        raise ValueError(f"resamples {resamples} must be at least 1 (2000 is plenty for a 95% interval)")


def bootstrap_interval(values: Sequence[float] | np.ndarray, *, statistic: Statistic = mean,
                       confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> Estimate:
    """Percentile-bootstrap interval of `statistic` over per-question `values`.

    `values` holds one value per question (or one row per question, e.g. (tokens, seconds)
    for `ratio_of_sums`); `statistic` maps a (resamples, n[, ...]) array of resampled
    questions to one value per resample. No values give `NA`."""
    _check(confidence, resamples)
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return NA
    rng = np.random.default_rng(seed)
    samples = data[rng.integers(0, len(data), size=(resamples, len(data)))]
    stats = statistic(samples)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(stats, [tail, 100 - tail])
    return Estimate(value=float(statistic(data[None, ...])[0]), low=float(low), high=float(high), n=len(data))


def paired_bootstrap(a: Sequence[float | None], b: Sequence[float | None], *, confidence: float = 0.95,
                     resamples: int = 2000, seed: int = 0) -> Estimate:
    """The difference of means a - b on the same questions, with a paired bootstrap interval.

    `a[i]` and `b[i]` are two modes' scores on question i; a question where either is None
    (the metric does not apply to it) is left out of both. An interval that excludes 0 says
    the difference is unlikely to be noise from this draw of questions.

    Example:
        >>> paired_bootstrap([1.0, 1.0, 0.5], [0.5, 0.5, 0.0]).value
        0.5
    """
    if len(a) != len(b):
        raise ValueError(f"paired values must be on the same questions: got {len(a)} and {len(b)} values")
    diffs = [x - y for x, y in zip(a, b) if x is not None and y is not None]
    return bootstrap_interval(diffs, confidence=confidence, resamples=resamples, seed=seed)
