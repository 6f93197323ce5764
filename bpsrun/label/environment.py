"""Label Studio's own virtual environment (its pins clash with ours): created on first use, and recognised as
bpsrun's by a marker file written before anything else, so that a creation cut short (a kill, a full disk) is
rebuilt on the next start instead of refused as someone else's folder. One install at a time: the marker is also
the install's lock, and pip holds the lock too, so a start whose installer was killed while pip ran waits for
that pip instead of racing it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

from bpsrun.errors import BpsrunError
from bpsrun.lock import shared_lock

LABEL_STUDIO_VERSION = "1.23.2"
PACKAGE = f"label-studio=={LABEL_STUDIO_VERSION}"
DEFAULT_VENV = Path(".venv-labelstudio")
VENV_MARKER = "bpsrun-label-studio"  # in a virtual environment this module created
INSTALL_LOG = "bpsrun-install.log"
INSTALL_ATTEMPTS = 2  # pip retries a refused connection itself, not a download cut off halfway (it crashes)
NEEDED_BYTES = 1_500_000_000  # the environment is 1.0 GB installed; pip unpacks beside it


def ensure_venv(path: Path) -> Path:
    """The `label-studio` executable, installing it into its own environment when missing. An install that fails
    raises one BpsrunError naming the package and the problem (pip's whole output stays in the environment)."""
    path = Path(path)
    exe = path / "bin" / "label-studio"
    if exe.exists():
        return exe
    if path.exists() and any(path.iterdir()) and not (path / VENV_MARKER).exists():
        raise BpsrunError(
            f"--venv {path} exists but holds no label-studio and was not made by bpsrun; name a new folder "
            f"(default {DEFAULT_VENV}) or an environment with {PACKAGE} installed"
        )
    require_space(path)
    waiting = f"another install into {path} is running; waiting for it ..."
    with shared_lock(path / VENV_MARKER, waiting) as lock:
        if exe.exists():  # the install we waited for
            return exe
        print(f"installing {PACKAGE} into {path} (a minute or two) ...", file=sys.stderr, flush=True)
        if not (path / "bin" / "pip").exists():  # new, or ours and cut short before ensurepip finished
            create_venv(path)
        return install(path, exe, lock)


def require_space(path: Path) -> None:
    """Refuse up front when the disk cannot hold the environment, instead of failing inside pip."""
    where = next(p for p in [path, *path.absolute().parents] if p.exists())
    free = shutil.disk_usage(where).free
    if free < NEEDED_BYTES:
        raise BpsrunError(
            f"cannot install {PACKAGE} into {path}: it needs about {NEEDED_BYTES / 1e9:.1f} GB free and "
            f"{where} has {free / 1e9:.2f} GB; free some space or pass --venv on a disk with room"
        )


def create_venv(path: Path) -> None:
    """A fresh environment with pip in `path`, beside the (locked) marker; an unfinished one of ours is cleared."""
    for child in path.iterdir():
        if child.name == VENV_MARKER:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    (path / VENV_MARKER).write_text(f"made by bpsrun.label.server for {PACKAGE}\n")
    try:
        venv.create(path, with_pip=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        output = exc.output if isinstance(exc, subprocess.CalledProcessError) and exc.output else b""
        raise BpsrunError(
            f"cannot create a virtual environment at {path} ({last_line(output.decode(errors='replace')) or exc}); "
            "on Debian/Ubuntu install python3-venv, or free disk space; the next start rebuilds it"
        ) from None


def install(path: Path, exe: Path, lock: int) -> Path:
    """pip install the package, once more after a crash (not after a verdict such as 'no matching version'); pip
    inherits the lock, so it is held until pip ends even if this process is killed first."""
    log = path / INSTALL_LOG
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar=off"]
    for attempt in range(1, INSTALL_ATTEMPTS + 1):
        with open(log, "w") as out:
            code = subprocess.run(
                [*pip, PACKAGE], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, pass_fds=(lock,)
            ).returncode
        output = log.read_text(errors="replace")
        if code == 0 and exe.exists():
            return exe
        if attempt == INSTALL_ATTEMPTS or not pip_crashed(output):
            break
        print(f"pip crashed ({last_line(output)}); trying once more ...", file=sys.stderr, flush=True)
    raise BpsrunError(install_problem(output, path, log))


def pip_crashed(output: str) -> bool:
    """pip ended in an unhandled exception (its `ERROR: Exception:` and a traceback), not a resolver's verdict."""
    return "ERROR: Exception:" in output


def last_line(output: str) -> str:
    """The last non-blank line: after a traceback, the exception itself."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""


_NETWORK_PROBLEMS = [
    (r"Connection refused", "connection refused"),
    (r"Name or service not known|Temporary failure in name resolution|nodename nor servname", "host not found"),
    (r"timed out|Timeout", "timed out"),
    (r"CERTIFICATE_VERIFY_FAILED|SSLError", "TLS certificate not trusted"),
    (r"ProxyError|Tunnel connection failed", "proxy refused the connection"),
    (r"Network is unreachable", "network unreachable"),
    (r"HTTP error (\d{3})|(\d{3}) Client Error", "HTTP {}"),
]


def install_problem(output: str, path: Path, log: Path) -> str:
    """One line out of pip's output: which package, which index, what went wrong, what to do."""
    missing = re.findall(r"No matching distribution found for (\S+)", output)
    package = missing[-1] if missing else PACKAGE
    shown = re.findall(r"Looking in indexes: (.+)", output)
    index = shown[-1].strip() if shown else os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")
    if re.search(r"No space left on device|Disk quota exceeded", output):
        return (
            f"cannot install {package} into {path}: the disk is full (pip: {last_line(output)}); free some space "
            f"and start again (it carries on), or pass --venv on a disk with room; pip's output: {log}"
        )
    for pattern, what in _NETWORK_PROBLEMS:
        found = re.search(pattern, output)
        if found:
            code = next((g for g in found.groups() if g), "")
            problem = f"the package index {index} is unreachable ({what.format(code)})"
            break
    else:
        errors = [line.strip()[len("ERROR: ") :] for line in output.splitlines() if line.startswith("ERROR:")]
        if missing:
            problem = f"the package index {index} has no {package}"
        else:
            what = last_line(output) if pip_crashed(output) else errors[-1] if errors else "see its output"
            problem = f"pip failed ({what}; index {index})"
    return (
        f"cannot install {package} into {path}: {problem}; set PIP_INDEX_URL to a reachable index or fix the "
        f"network, or pass --venv with an environment holding {PACKAGE}; pip's output: {log}"
    )
