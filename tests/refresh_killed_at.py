"""Run one refresh and SIGKILL this process at a point (crash-safety tests).

    python tests/refresh_killed_at.py CONFIG POINT

POINT is a refresh step (`ingested`, `planned`, `synthesized`, `trained`, `evaluated`,
`promoted`: killed right after it), or `save:N`: killed right after training saved its
checkpoint of step N. The kill points are injected through `Project.refresh(on_step=...,
callbacks=[...])`; the library has no test hooks.
"""

import os
import signal
import sys

from transformers import TrainerCallback

import framework


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAfterSave(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            _kill()


def main() -> None:
    config, point = sys.argv[1], sys.argv[2]
    callbacks = [KillAfterSave(int(point.partition(":")[2]))] if point.startswith("save:") else []
    framework.load(config, show_progress=False).refresh(
        callbacks=callbacks, on_step=lambda step: _kill() if step == point else None)


if __name__ == "__main__":
    main()
