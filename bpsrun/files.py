"""Atomic writes: a reader (or a rerun after a crash) never sees a half-written file or folder."""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bpsrun.errors import BpsrunError


def read_umask() -> int:
    """The process umask. Linux reports it in /proc/self/status (no window at all); elsewhere it can only be read
    by setting it, so it is set back at once, at import, before bpsrun starts threads of its own (a file another
    thread creates in that instant would get mode 0666/0777)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = read_umask()


def file_mode() -> int:
    """The mode open() gives a new file. mkstemp's 0600 (mkdtemp's 0700) would hide what bpsrun writes, e.g.
    renders, from a Label Studio server running as another user, so temporaries get this before their rename."""
    return 0o666 & ~UMASK


def dir_mode() -> int:
    return 0o777 & ~UMASK


# errors that mean "no room": a full disk, or the user's quota
NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


class DiskFull(BpsrunError):
    """No space left (or over quota) while writing `path`; the previous `path`, if any, is intact."""

    def __init__(self, path: Path):
        super().__init__(f"disk full while writing {path}; free space and rerun")
        self.path = path

    def __reduce__(self):  # sweep jobs pickle exceptions across processes
        return DiskFull, (self.path,)


def no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in NO_SPACE


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_prefix(path: Path) -> str:
    """`.<name>.<pid>.`: a temporary sibling names its writer, so one left by a killed process can be removed."""
    return f".{path.name}.{os.getpid()}."


def remove_stale_temps(path: Path) -> None:
    """Temporary siblings of `path` whose writing process is gone (killed mid-write)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink(missing_ok=True)


@contextmanager
def reporting_disk_full(path: Path) -> Iterator[None]:
    """A full disk (or quota) while writing `path` becomes one line naming `path`, not an OSError traceback."""
    try:
        yield
    except DiskFull as exc:
        if exc.path == path:
            raise
        raise DiskFull(path) from exc  # name the target, not a file inside its scratch copy
    except OSError as exc:
        if no_space(exc):
            raise DiskFull(path) from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with reporting_disk_full(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, file_mode())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a scratch folder that becomes `path` only if the block completes. A previous `path` is moved aside,
    not deleted, until the new one is in place (and put back if that fails)."""
    with reporting_disk_full(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp"))
        old = None
        try:
            yield tmp
            os.chmod(tmp, dir_mode())
            if path.exists():
                old = Path(tempfile.mkdtemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp"))
                os.replace(path, old)  # a folder may replace an empty folder
            os.replace(tmp, path)
        finally:
            if old is not None and old.exists() and not path.exists():
                os.replace(old, path)
            for scratch in (tmp, old):
                if scratch is not None and scratch.exists():
                    shutil.rmtree(scratch)


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path in the same folder; it replaces `path` only if the block completes."""
    with reporting_disk_full(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, file_mode())
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)


def cached_npy(path: Path, compute: Callable[[], np.ndarray], mmap: bool = False) -> np.ndarray:
    """The array saved at `path`, computed and written atomically the first time."""
    if not path.exists():
        array = compute()
        with atomic_file(path) as tmp, open(tmp, "wb") as f:
            np.save(f, array)
    return np.load(path, mmap_mode="r" if mmap else None)


def bytes_digest(data: bytes) -> str:
    """A short digest of a file's bytes: caches keyed by what a file holds, not where it lies."""
    return hashlib.sha256(data).hexdigest()[:16]


def stable_hash(data: Any) -> str:
    """A short digest of JSON-able `data`, stable across processes and runs (cache keys)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
