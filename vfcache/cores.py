"""How many cores this process may use: its CPU affinity, which containers, `taskset` and
batch schedulers narrow (os.cpu_count() would report the whole machine)."""

from __future__ import annotations

import os


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
