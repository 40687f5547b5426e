"""A refresh's durable state: how far the refresh in progress got, and what the last one decided.

`<workspace>/refresh/<adapter>/` holds:

- `state.json`: the refresh in progress, written (atomically) after each step: its id, the
  plan's fingerprint, the serving version it started from, then the dataset version
  synthesis wrote, the candidate training published, the gate's verdict. A run killed at
  any point leaves it behind; the next run resumes after the last step recorded when its
  plan has the same fingerprint (same serving version, same changes, same settings), and
  otherwise starts over. The serving version is only ever changed by the last step.
- `last.json`: what the last finished refresh decided, with the ledger's fingerprint, so a
  run that finds nothing new since returns at once (and a rejected candidate is not
  trained again for the same changes unless forced).
- `lock`: held for the whole run; a second refresh of the same adapter fails at once.

Example:
    >>> s = RefreshState(id="20261201T000000Z", fingerprint="ab", serving="v0001", started_at="...")
    >>> s.step
    'planned'
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

STATE, LAST, LOCK = "state.json", "last.json", "lock"


class RefreshBusyError(RuntimeError):
    """Another refresh of the same adapter holds the lock."""


@dataclass(frozen=True)
class RefreshState:
    id: str
    fingerprint: str
    serving: str
    started_at: str
    dataset_version: str | None = None
    candidate: str | None = None
    verdict: Mapping[str, Any] | None = None
    examples: Mapping[str, Any] = field(default_factory=dict)
    seconds: Mapping[str, float] = field(default_factory=dict)
    runs: int = 1  # how many runs worked on it (more than one: it was resumed)

    @property
    def step(self) -> str:
        """The last step done: planned, synthesized, trained or evaluated."""
        return "evaluated" if self.verdict is not None else "trained" if self.candidate else \
            "synthesized" if self.dataset_version else "planned"

    def add_seconds(self, **seconds: float) -> "RefreshState":
        total = {**self.seconds}
        for name, s in seconds.items():
            total[name] = round(total.get(name, 0.0) + s, 2)
        return dataclasses.replace(self, seconds=total)


def _write(path: Path, data: Mapping) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    os.replace(tmp, path)


def load_state(folder: Path) -> RefreshState | None:
    path = folder / STATE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    known = {f.name for f in dataclasses.fields(RefreshState)}
    return RefreshState(**{k: v for k, v in data.items() if k in known})


def save_state(folder: Path, state: RefreshState) -> RefreshState:
    _write(folder / STATE, dataclasses.asdict(state))
    return state


def clear_state(folder: Path) -> None:
    (folder / STATE).unlink(missing_ok=True)


def load_last(folder: Path) -> dict:
    path = folder / LAST
    return json.loads(path.read_text()) if path.is_file() else {}


def save_last(folder: Path, last: Mapping) -> None:
    _write(folder / LAST, last)


@contextmanager
def refresh_lock(folder: Path) -> Iterator[None]:
    """Held for a whole refresh; a killed run releases it with its process."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_CREAT | os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RefreshBusyError(f"another refresh is running for {folder.name!r} (lock {folder / LOCK}); wait "
                                   "for it to finish (a killed run releases the lock automatically)") from None
        yield
    finally:
        os.close(fd)
