"""One writer per campaign: an advisory lock on `<campaign>/.lock`.

flock locks die with their process, so a lock left by a killed run is simply taken over by the next one.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bpsrun.errors import BpsrunError


@contextmanager
def campaign_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    path = root / ".lock"
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise BpsrunError(
                f"{root}: campaign is in use by another bpsrun process (pid {holder}); "
                f"wait for it to finish or stop it, then rerun"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def shared_lock(path: Path, waiting: str | None = None) -> Iterator[int]:
    """Wait for exclusive use of `path` (a cache entry several parallel campaigns may want to compute), printing
    `waiting` when another process holds it. Yields the lock's file descriptor: a child given it (`pass_fds`)
    holds the lock too, until it ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield f.fileno()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
