"""How many CPU threads torch may use: the CPUs this process may actually run on.

torch starts one thread per CPU it sees, but a container or a job scheduler often gives a
process fewer: a CPU affinity mask (taskset, cpusets) or a cgroup quota (docker --cpus,
Kubernetes limits). More threads than CPUs thrash: on a 2-core machine shared with one
other job the first answer took 4x longer with torch's default. `runtime.threads` in config
sets the number; by default it is the CPUs this process may use, quotas included.

Example:
    >>> usable_cpus() >= 1
    True
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

log = logging.getLogger(__name__)


def _cgroup_quota(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The smallest CPU quota on this process's cgroup path (v2 cpu.max or v1 cfs quota), in CPUs."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: "0::/path"
            folders, files = [root / path.lstrip("/"), *(root / p for p in _parents(path))], ("cpu.max",)
        elif "cpu" in controllers.split(","):
            base = root / "cpu" if (root / "cpu").is_dir() else root / controllers
            folders, files = [base / path.lstrip("/"), *(base / p for p in _parents(path))], ("cpu.cfs_quota_us",)
        else:
            continue
        limits += [q for folder in folders if (q := _read_quota(folder, files[0])) is not None]
    return min(limits) if limits else None


def _parents(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, -1, -1)]


def _read_quota(folder: Path, name: str) -> float | None:
    try:
        if name == "cpu.max":
            quota, period = (folder / name).read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota = int((folder / name).read_text())
        return None if quota < 0 else quota / int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask, lowered by a cgroup CPU quota if there is one."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cpus, math.floor(quota))) if quota else max(1, cpus)


def configure_threads(threads: int | None) -> int:
    """Set torch's thread count: `threads` if given, else OMP_NUM_THREADS if set, else usable_cpus()."""
    import torch

    n = threads or (int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS", "").isdigit()
                    else usable_cpus())
    if torch.get_num_threads() != n:
        log.info("torch threads: %d (was %d)", n, torch.get_num_threads())
        torch.set_num_threads(n)
    return n
