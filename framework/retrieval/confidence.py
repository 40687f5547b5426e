"""Retrieval confidence: how likely the retrieved chunks hold the answer, from 0 to 1.

A cosine similarity of 0.42 means little by itself: its useful range differs per
embedder and per corpus. `ragtune eval --retrieval-only --calibrate` fits a one-feature
logistic model (top similarity -> probability that a gold chunk is in the top k) on
questions with known gold documents, and saves it beside the index. With it, every
answer carries `confidence`; `auto` mode compares it with `router.auto_min_confidence`
and `router.abstain_below_confidence` makes rag/combined answer "The documents I can read
don't say." instead of guessing from unrelated passages. Questions whose `document` is an
empty list (nothing in the corpus answers them) are negatives for the fit.

Without a calibration, abstention compares the top similarity itself with a floor:
`router.abstain_below: auto` (the default) takes the floor measured for the configured
embedder (MEASURED_FLOORS, from tests/benchmarks/bench_abstention.py on the shared sets;
docs/results.md, "Abstention"); an embedder nobody measured gets no floor, and a warning.

Example:
    >>> cal = Calibration.fit([0.2, 0.3, 0.6, 0.7, 0.25, 0.65], [0, 0, 1, 1, 0, 1], k=3)
    >>> cal.confidence(0.7) > 0.5 > cal.confidence(0.2)
    True
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    slope: float
    intercept: float
    k: int
    questions: int
    hit_rate: float
    brier: float
    embedder: str = ""
    retrieval: str = ""

    def confidence(self, top_score: float | None) -> float:
        if top_score is None:
            return 0.0
        z = self.slope * top_score + self.intercept
        return round(1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z)))), 4)

    @classmethod
    def fit(cls, scores: Sequence[float], hits: Sequence[int | bool], *, k: int, l2: float = 1e-3,
            **info) -> "Calibration":
        """Logistic regression by Newton's method, with a little L2 so separable data stays finite."""
        x = np.asarray(scores, dtype=np.float64)
        y = np.asarray(hits, dtype=np.float64)
        if len(x) < 5:
            raise ValueError(f"calibration needs at least 5 questions with gold documents; got {len(x)}")
        if y.min() == y.max():
            raise ValueError(
                f"calibration needs both hits and misses; all {len(y)} questions were "
                f"{'hits' if y[0] else 'misses'}. Add questions the documents do not answer "
                "(with \"document\": []) or harder ones.")
        features = np.stack([x, np.ones_like(x)], axis=1)
        w = np.zeros(2)
        for _ in range(100):
            p = 1.0 / (1.0 + np.exp(-np.clip(features @ w, -60, 60)))
            grad = features.T @ (p - y) + l2 * np.array([w[0], 0.0])
            hess = features.T @ (features * (p * (1 - p))[:, None]) + l2 * np.diag([1.0, 0.0]) + 1e-9 * np.eye(2)
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        p = 1.0 / (1.0 + np.exp(-np.clip(features @ w, -60, 60)))
        return cls(slope=float(w[0]), intercept=float(w[1]), k=k, questions=len(x), hit_rate=float(y.mean()),
                   brier=round(float(np.mean((p - y) ** 2)), 4), **info)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, *, embedder: str | None = None, retrieval: str | None = None) -> "Calibration | None":
        """The saved fit, or None. With `embedder` and `retrieval`, a fit made for others is ignored
        (with a warning): its scores meant something else."""
        if not path.is_file():
            return None
        cal = cls(**json.loads(path.read_text()))
        if embedder is not None and (cal.embedder, cal.retrieval) != (embedder, retrieval):
            log.warning("ignoring %s: fitted for embedder %s with %s retrieval; run `ragtune eval --retrieval-only "
                        "--calibrate` again", path, cal.embedder, cal.retrieval)
            return None
        return cal


# The top cosine similarity under which `router.abstain_below: auto` abstains, per `index.embedder` kind,
# with hybrid or dense retrieval: the highest floor that declines at most 5% of the answerable questions
# on each measured corpus, checked on the others (docs/results.md, "Abstention"). The hashing embedder
# (tests, smoke runs) gets none: its similarity depends on chunk length more than on relevance (a related
# question scored 0.115 and an unrelated one 0.156 on the test corpus; demo questions score from 0.045).
MEASURED_FLOORS = {"bundled": 0.25}
NO_FLOOR = frozenset({"hashing"})


def measured_floor(embedder: str, retrieval: str) -> float | None:
    """The measured abstention floor for `index.embedder` and `index.retrieval`; None where none was
    measured: another embedder (its similarities have another scale), or lexical retrieval (chunks ranked
    by BM25 can be relevant with a low cosine).

    Example:
        >>> measured_floor("bundled", "hybrid") == MEASURED_FLOORS["bundled"], measured_floor("/m/e5", "hybrid")
        (True, None)
    """
    if retrieval == "lexical":
        return None
    return MEASURED_FLOORS.get(embedder.split(":", 1)[0])


def _known_without_floor(embedder: str) -> bool:
    return embedder.split(":", 1)[0] in NO_FLOOR


def abstain_floor(setting: float | str | None, embedder: str, retrieval: str) -> float | None:
    """The cosine floor `router.abstain_below` stands for: a number as given, None (never abstain), or
    `auto`: the measured one, with a warning where there is none."""
    if setting != "auto":
        return setting  # type: ignore[return-value]
    floor = measured_floor(embedder, retrieval)
    if floor is None and not _known_without_floor(embedder):
        log.warning("router.abstain_below: auto has no measured floor for index.embedder %r with %s retrieval, so "
                    "answers never abstain; run `ragtune eval --retrieval-only --calibrate` and set "
                    "router.abstain_below_confidence, or set router.abstain_below to a similarity floor",
                    embedder, retrieval)
    return floor


def top_score(sources) -> float | None:
    """The feature the calibration reads: the best cosine similarity among the retrieved chunks."""
    return max((s.score for s in sources), default=None)
