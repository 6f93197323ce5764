"""Fault injection for the crash-safety tests: `BPSRUN_KILL_AT=<point>[:<n>]` SIGKILLs this process the n-th time
(default the first) it passes `checkpoint(<point>)`. Without the variable a checkpoint does nothing."""

from __future__ import annotations

import os
import signal
from collections import Counter

_passes: Counter[str] = Counter()


def checkpoint(point: str) -> None:
    spec = os.environ.get("BPSRUN_KILL_AT")
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    _passes[point] += 1
    if _passes[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
