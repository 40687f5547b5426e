"""Sticky assignment of units (users) to experiment arms, by a documented hash anyone can recompute.

A unit's bucket is `int(sha256(f"{salt}:{unit_id}").hexdigest()[:16], 16) % 10000`: the first 64 bits
of the SHA-256 of the salt and the unit id, joined by a colon, as UTF-8, modulo 10,000. Nothing else goes
in (no process seed, no clock), so a user lands in the same bucket in every process, on every machine,
after every restart; another salt reshuffles everyone.

Buckets map to arms by cumulative weight, in the order the arms are listed: with weights 50/50 the first
arm holds buckets 0-4999 and the second 5000-9999; each arm's share of the 10,000 buckets is its weight
share, rounded at the boundaries. Changing weights moves only the buckets between old and new boundaries:
50/50 -> 60/40 moves buckets 5000-5999 (10% of units) from the second arm to the first and no one else, the
fewest any mapping can move. With three or more arms a boundary move also shifts the arms after it, so add
new arms at the end and keep the order. Disabling an experiment assigns no one (normal routing).

Example:
    >>> bucket("s1", "ana") == int(hashlib.sha256(b"s1:ana").hexdigest()[:16], 16) % 10_000
    True
    >>> boundaries([1, 1]), boundaries([3, 2])
    ([5000, 10000], [6000, 10000])
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

import numpy as np

from framework.config import ArmConfig, ExperimentConfig
from framework.records import Principal

BUCKETS = 10_000


def bucket(salt: str, unit_id: str) -> int:
    """The unit's bucket in [0, 10000) (see the module docstring for the formula)."""
    return int(hashlib.sha256(f"{salt}:{unit_id}".encode()).hexdigest()[:16], 16) % BUCKETS


def buckets(salt: str, unit_ids: Sequence[str]) -> np.ndarray:
    """`bucket` for many units at once (a report or a simulation of 100,000 users)."""
    return np.fromiter((bucket(salt, u) for u in unit_ids), dtype=np.int64, count=len(unit_ids))


def boundaries(weights: Sequence[float]) -> list[int]:
    """The exclusive upper bucket of each arm: cumulative weight shares of 10,000, rounded."""
    total, running, out = float(sum(weights)), 0.0, []
    for w in weights:
        running += w
        out.append(round(BUCKETS * running / total))
    out[-1] = BUCKETS
    return out


def arm_indexes(weights: Sequence[float], unit_buckets: np.ndarray) -> np.ndarray:
    """The arm (its position in the list) of each bucket."""
    return np.searchsorted(np.asarray(boundaries(weights)), unit_buckets, side="right")


@dataclass(frozen=True)
class Assignment:
    """A unit's arm in one experiment: what the router applies (mode, adapter, top_k, prompt) and what the
    exposure log records."""

    experiment: str
    arm: str
    unit_id: str
    bucket: int
    settings: ArmConfig

    @property
    def mode(self) -> str:
        return self.settings.mode


def assign_unit(experiment: ExperimentConfig, unit_id: str) -> Assignment:
    """The arm of `unit_id`, whether or not the experiment is running (`ragtune ab assign` shows it)."""
    b = bucket(experiment.hash_salt, unit_id)
    arm = experiment.arms[int(arm_indexes([a.weight for a in experiment.arms], np.array([b]))[0])]
    return Assignment(experiment=experiment.name, arm=arm.name, unit_id=unit_id, bucket=b, settings=arm)


def why_not(experiment: ExperimentConfig, principal: Principal, unit_id: str | None, now: datetime) -> str | None:
    """Why this request is not in the experiment (None: it is): stopped, outside the dates or the audience,
    or no unit id (`anonymous` is not a unit: all anonymous callers would share one arm)."""
    if not experiment.enabled:
        return "disabled"
    if experiment.start and now < experiment.start:
        return f"starts {experiment.start.isoformat()}"
    if experiment.end and now >= experiment.end:
        return f"ended {experiment.end.isoformat()}"
    if experiment.audience and not set(experiment.audience) & set(principal.groups):
        return f"the caller is outside its audience ({', '.join(experiment.audience)})"
    if not unit_id or unit_id == "anonymous":
        return "no unit id: anonymous callers are not assigned"
    return None


def assign(experiments: Sequence[ExperimentConfig], *, principal: Principal, now: datetime,
           requested: str | None = None, end_user: str | None = None) -> tuple[Assignment | None, str | None]:
    """The caller's arm and a note: the experiment `requested` by name, else the first running one whose
    audience holds the caller. No arm: normal routing, and the note says why the requested one did not apply."""
    for experiment in experiments:
        if requested is not None and experiment.name != requested:
            continue
        unit_id = end_user if experiment.unit == "end_user" else principal.user
        reason = why_not(experiment, principal, unit_id, now)
        if reason is None:
            return assign_unit(experiment, unit_id), None
        if requested is not None:
            return None, f"experiment {experiment.name} not applied: {reason}"
    if requested is not None:
        raise KeyError(f"no experiment named {requested!r}; configured: "
                       f"{', '.join(e.name for e in experiments) or 'none'}")
    return None, None
