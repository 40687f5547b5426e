"""Run one ingest and SIGKILL this process the n-th time it completes a step (crash-safety tests).

    python tests/ingest_killed_at.py CONFIG POINT:N      # POINT: parsed, upserted, committed, removed

The kill point is injected through `Project.ingest(on_step=...)`; the library has no test hooks.
"""

import os
import signal
import sys
from collections import Counter

import framework


def main() -> None:
    config, spec = sys.argv[1], sys.argv[2]
    point, _, count = spec.partition(":")
    seen: Counter = Counter()

    def on_step(name: str) -> None:
        seen[name] += 1
        if name == point and seen[name] == int(count or 1):
            os.kill(os.getpid(), signal.SIGKILL)

    framework.load(config, show_progress=False).ingest(on_step=on_step)


if __name__ == "__main__":
    main()
