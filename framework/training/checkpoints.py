"""Training checkpoints in the workspace, and resuming only the run they belong to.

Checkpoints of adapter NAME go to `<workspace>/checkpoints/<NAME>/` beside a `run.json`
that records what the run trains: dataset hash, base model fingerprint, precision and
every hyperparameter that changes the result. `--resume` continues from the newest
checkpoint only when that record matches the run being started; otherwise it says what
differs. Only the Trainer writes checkpoints (optimizer, scheduler, RNG and data position
included), so a resumed run ends where an uninterrupted one would.

Example:
    >>> start = prepare_checkpoints(Path(".ragtune/checkpoints/demo"), identity, resume=True)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

# Settings that change how a run is recorded, not what it computes: a resume may change them.
NOT_IDENTITY = ("save_steps", "keep_checkpoints", "report_to", "gate")


class ResumeError(RuntimeError):
    """There is no matching interrupted run to resume."""


def run_identity(*, dataset_hash: str, base_fingerprint: str, precision: str, hyperparameters: dict,
                 rows_hash: str | None = None, warm_start: str | None = None) -> dict:
    """What a run trains. `rows_hash` (a chosen subset of the rows) and `warm_start` (the adapter it
    starts from) are recorded only when set, so run.json files of plain runs keep matching."""
    params = {k: v for k, v in hyperparameters.items() if k not in NOT_IDENTITY}
    extra = {k: v for k, v in (("rows_hash", rows_hash), ("warm_start", warm_start)) if v is not None}
    return {"dataset_hash": dataset_hash, "base_fingerprint": base_fingerprint, "precision": precision,
            "hyperparameters": params, **extra}


def last_checkpoint(folder: Path) -> Path | None:
    steps = [(int(p.name.split("-")[1]), p) for p in folder.glob("checkpoint-*")
             if p.is_dir() and p.name.split("-")[1].isdigit() and (p / "trainer_state.json").is_file()]
    return max(steps)[1] if steps else None


def _differences(old: dict, new: dict) -> list[str]:
    flat_old = {**{k: v for k, v in old.items() if k != "hyperparameters"}, **old.get("hyperparameters", {})}
    flat_new = {**{k: v for k, v in new.items() if k != "hyperparameters"}, **new.get("hyperparameters", {})}
    return [f"{k}: {flat_old.get(k)!r} -> {flat_new.get(k)!r}" for k in sorted(set(flat_old) | set(flat_new))
            if flat_old.get(k) != flat_new.get(k)]


def prepare_checkpoints(folder: Path, identity: dict, *, resume: bool | Literal["auto"], staging: Path) -> Path | None:
    """The checkpoint to resume from, or None after clearing the folder (and the adapter's staging
    folder) for a fresh run. `resume="auto"` continues the interrupted run only when it trained the
    same thing, and otherwise starts over (a refresh resumes whatever it can, unattended). Under
    torchrun / accelerate launch every process checks a resume itself (so a refused resume stops
    them all, instead of leaving the others waiting at a barrier), and only the lead process (the
    one holding the training lock) clears, before the others go on."""
    from accelerate import PartialState

    from framework.training.lock import is_lead

    if resume == "auto":
        resume = _matches(folder, identity)
    if resume:
        return _resumable(folder, identity)
    state = PartialState()
    with state.main_process_first():
        if is_lead():
            shutil.rmtree(staging, ignore_errors=True)
            _start_over(folder, identity)
    return None


def _matches(folder: Path, identity: dict) -> bool:
    record = folder / "run.json"
    return last_checkpoint(folder) is not None and record.is_file() and \
        not _differences(json.loads(record.read_text()), identity)


def _resumable(folder: Path, identity: dict) -> Path:
    record = folder / "run.json"
    latest = last_checkpoint(folder)
    if latest is None or not record.is_file():
        raise ResumeError(f"nothing to resume: no checkpoint in {folder}; run `ragtune finetune` without --resume")
    changed = _differences(json.loads(record.read_text()), identity)
    if changed:
        raise ResumeError(
            f"the interrupted run in {folder} trained something else ({'; '.join(changed)}); resume with the "
            "same dataset and settings, or start over without --resume"
        )
    log.info("resuming from %s", latest)
    return latest


def _start_over(folder: Path, identity: dict) -> None:
    if last_checkpoint(folder) is not None:
        log.warning("starting over: discarding the checkpoints of an interrupted run in %s "
                    "(use --resume to continue it instead)", folder)
    shutil.rmtree(folder, ignore_errors=True)
    # exist_ok: under torchrun another rank's Trainer may already have made its output folder.
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps(identity, indent=2))


def clear_checkpoints(folder: Path) -> None:
    """A finished run's checkpoints are only in the way of the next run."""
    shutil.rmtree(folder, ignore_errors=True)
