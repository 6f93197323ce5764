"""SIGTERM (what SLURM, Kubernetes and `kill` send) as an exception: the run stops where it is, its atomic writes
roll back, its MLflow runs end KILLED, and the process exits with status 143 (128 + SIGTERM), never 0.

Lightning's own SIGTERM handler only asks the fit to stop early, which would save a half-trained model as the
round's; it still runs (it chains to ours), then ours ends the run.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


def exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def sigterm_exits() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
