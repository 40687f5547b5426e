"""One training run per adapter at a time: a file lock held from the first checkpoint to the publish.

Two `ragtune finetune` runs of one adapter share its staging folder (`adapters/<name>/.incoming`)
and its checkpoints, so each would wipe and overwrite the other's and publish a mix. The first
run holds `<workspace>/checkpoints/<name>.lock` (fcntl, like the ingest's workspace lock) until
it has published; a second fails at once, saying which adapter is busy and what to do. A killed
run releases the lock with its process. Under torchrun / accelerate launch only the lead
process (global rank 0) takes the lock. Where the ranks can already talk (accelerate set up
the process group, as on GPUs) it tells them the outcome, so a refused launch stops every rank;
where they cannot yet (CPU, before the Trainer joins them) the other ranks touch nothing shared
before they meet the lead at the Trainer's rendezvous, and a refused lead's exit makes torchrun
stop them.

Example:
    >>> with training_lock(ws.training_lock("support"), "support"):  # doctest: +SKIP
    ...     train_and_publish(...)
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class TrainingBusyError(RuntimeError):
    """Another run is training the same adapter in the same workspace."""


def is_lead() -> bool:
    """Whether this process takes the lock and clears the last run's files: the main process, by the launcher's
    RANK too, since under torchrun on CPU accelerate's state is not distributed until the Trainer starts (every
    rank then calls itself the main one)."""
    from accelerate import PartialState

    return PartialState().is_main_process and os.environ.get("RANK", "0") == "0"


@contextmanager
def training_lock(path: Path, adapter: str) -> Iterator[None]:
    """Hold the adapter's lock for the block; TrainingBusyError at once if another run holds it."""
    from accelerate import PartialState

    state = PartialState()
    fd, error = None, None
    if is_lead():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            fd = None
            error = (f"another run is training adapter {adapter!r} in this workspace ({path} is locked); wait for "
                     "it to finish, or train under another finetune.adapter name (a killed run releases the lock "
                     "automatically)")
    if state.num_processes > 1:  # every rank learns whether the main one got the lock
        from accelerate.utils import broadcast_object_list

        error = broadcast_object_list([error])[0]
    if error:
        raise TrainingBusyError(error)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def check_free(path: Path, adapter: str) -> None:
    """Raise TrainingBusyError now if another run holds the adapter's lock (`ragtune finetune` checks before its
    estimate's training steps; `train_and_publish` takes the lock again and holds it until it has published)."""
    with training_lock(path, adapter):
        pass
