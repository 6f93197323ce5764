"""`python -m bpsrun.label.server` as a service: start (detached or in the foreground), refuse, stop.

A real Label Studio from its own environment (`BPSRUN_LABEL_STUDIO_VENV` or `.venv-labelstudio` in the
repository, created when missing). One detached server is shared by the module; the tests that stop a server
start their own from a copy of its database (a first start spends most of its time on migrations).
"""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bpsrun.errors import BpsrunError
from bpsrun.label.environment import DEFAULT_VENV, INSTALL_LOG, VENV_MARKER, ensure_venv
from bpsrun.label.server import (
    LOG_FILE,
    PASSWORD_FILE,
    PID_FILE,
    TOKEN_FILE,
    group_members,
    holders,
    listening_inodes,
)
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # real servers, the command line in subprocesses

LS_VENV = Path(os.environ.get("BPSRUN_LABEL_STUDIO_VENV", REPO / DEFAULT_VENV))
SERVER = [sys.executable, "-m", "bpsrun.label.server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_args(port: int, data_dir: Path, document_root: Path, venv: Path = LS_VENV) -> list[str]:
    return [
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--document-root",
        str(document_root),
        "--venv",
        str(venv),
    ]


def launcher(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SERVER, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env or os.environ.copy()
    )


def start_detached(port: int, data_dir: Path, document_root: Path) -> dict:
    """A detached Label Studio; its pid file's record. The environment is installed here first, out of reach of
    the launcher's timeout (a slow index must not get the installer killed)."""
    ensure_venv(LS_VENV)
    proc = launcher("--detach", *server_args(port, data_dir, document_root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((data_dir / PID_FILE).read_text())
    assert f"Label Studio is up at http://127.0.0.1:{port} (pid {record['pid']}" in proc.stdout
    return {**record, "stdout": proc.stdout}


def stop_detached(data_dir: Path) -> None:
    """`stop`, and whatever is left of the server's process group killed (a failed test must not leak one)."""
    record = json.loads((data_dir / PID_FILE).read_text()) if (data_dir / PID_FILE).exists() else None
    launcher("stop", "--data-dir", str(data_dir), timeout=120)
    if record and group_members(record["pid"]):
        os.killpg(record["pid"], signal.SIGKILL)


def listeners(port: int) -> list[int]:
    """The processes listening on `port` (empty: nothing listens)."""
    inodes = listening_inodes(port)
    found = holders(inodes)
    return found if found or not inodes else [-1]  # -1: a listener this user cannot inspect


def seeded_data_dir(source: Path, target: Path) -> Path:
    """A data dir with the source's user, token and migrated database (a consistent copy while it runs)."""
    target.mkdir(parents=True)
    for name in (TOKEN_FILE, PASSWORD_FILE):
        shutil.copy2(source / name, target / name)
    with (
        sqlite3.connect(source / "label_studio.sqlite3") as src,
        sqlite3.connect(target / "label_studio.sqlite3") as dst,
    ):
        src.backup(dst)
    return target


def secrets_of(data_dir: Path) -> dict[str, str]:
    return {name: (data_dir / name).read_text().strip() for name in (TOKEN_FILE, PASSWORD_FILE)}


def tree(*roots: int) -> set[int]:
    """These processes, their process groups and every descendant, alive now."""
    procs = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] not in "ZX":  # a zombie is no process
                procs[int(entry.name)] = (int(fields[1]), int(fields[2]))  # ppid, pgrp
    found = {p for p in roots if p in procs} | {p for p, (_, g) in procs.items() if g in roots}
    while True:
        more = {p for p, (pp, _) in procs.items() if pp in found} - found
        if not more:
            return found
        found |= more


def assert_no_secret_in_cmdlines(pids: set[int], data_dir: Path) -> None:
    assert pids, "no process to inspect"
    secrets = secrets_of(data_dir)
    for pid in pids:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        for name, secret in secrets.items():
            assert secret.encode() not in args, f"{name} on the command line of pid {pid}: {args!r}"


@pytest.fixture(scope="module")
def served(label_studio):
    """The session's detached Label Studio: its pid file's record, the printed lines under `stdout`."""
    return label_studio


def test_detached_server_is_its_own_and_prints_the_key_line(served):
    data_dir, port, pid = Path(served["data_dir"]), served["port"], served["pid"]
    assert requests.get(f"{served['url']}/health", timeout=10).ok
    assert set(listeners(port)) <= set(group_members(pid)) and listeners(port)  # the port is its own
    line = next(s.strip() for s in served["stdout"].splitlines() if s.strip().startswith("export "))
    token = subprocess.run(
        ["bash", "-c", f'{line} && printf %s "$LABEL_STUDIO_API_KEY"'], capture_output=True, text=True
    )
    assert token.stdout == (data_dir / TOKEN_FILE).read_text().strip()
    assert (data_dir / LOG_FILE).stat().st_size > 0  # Label Studio's output goes to the log
    status = launcher("status", "--data-dir", str(data_dir))
    assert status.returncode == 0 and f"(pid {pid})" in status.stdout and "answering" in status.stdout


def test_no_secret_on_any_command_line(served):
    data_dir, pid = Path(served["data_dir"]), served["pid"]
    pids = tree(pid)
    assert_no_secret_in_cmdlines(pids, data_dir)
    # they went through the environment instead, and the log never shows them
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    secrets = secrets_of(data_dir)
    assert f"LABEL_STUDIO_USER_TOKEN={secrets[TOKEN_FILE]}".encode() in environ
    assert f"LABEL_STUDIO_PASSWORD={secrets[PASSWORD_FILE]}".encode() in environ
    log = (data_dir / LOG_FILE).read_text()
    assert all(secret not in log for secret in secrets.values())


def test_a_second_launcher_is_refused_and_the_first_keeps_serving(served, tmp_path):
    data_dir, port, pid = Path(served["data_dir"]), served["port"], served["pid"]
    outputs = Path(served["document_root"])

    # another data dir on the same port: one line naming the port, the holder and the fix
    second = launcher("--detach", *server_args(port, tmp_path / "other", outputs))
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert lines[0].startswith(f"bpsrun: error: port {port} is in use by pid {pid}, a Label Studio serving {data_dir}")
    assert f"stop --data-dir {data_dir}" in lines[0]

    # the same data dir on another port: refused, naming the running server
    again = launcher(*server_args(free_port(), data_dir, outputs))
    assert again.returncode == 2
    assert again.stderr.strip() == (
        f"bpsrun: error: {data_dir} is already served by Label Studio pid {pid} on port {port}, document root "
        f"{outputs}; use it, or stop it first: python -m bpsrun.label.server stop --data-dir {data_dir}"
    )

    # --reuse accepts it (same port and document root): the same command works on every later run
    reuse = launcher("--detach", "--reuse", *server_args(port, data_dir, outputs))
    assert reuse.returncode == 0, reuse.stderr
    assert f"Label Studio is already running at http://127.0.0.1:{port} (pid {pid}" in reuse.stdout

    # any other program on a port: named by its pid and command line
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        refused = launcher(*server_args(taken, tmp_path / "third", outputs))
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith(f"bpsrun: error: port {taken} is in use by pid {os.getpid()}: ")
    assert refused.stderr.count("\n") == 1

    # the first one never noticed
    assert requests.get(f"{served['url']}/health", timeout=10).ok
    assert set(listeners(port)) <= set(group_members(pid)) and listeners(port)
    assert json.loads((data_dir / PID_FILE).read_text())["pid"] == pid


def test_stop_ends_every_process_and_frees_the_port(served, tmp_path):
    data_dir, outputs, port = seeded_data_dir(Path(served["data_dir"]), tmp_path / "data"), tmp_path, free_port()
    record = start_detached(port, data_dir, outputs)
    pids = tree(record["pid"])
    assert pids and listeners(port)
    stopped = launcher("stop", "--data-dir", str(data_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"stopped Label Studio (pid {record['pid']}) at http://127.0.0.1:{port}"
    assert listeners(port) == []
    assert tree(*pids) == set() and group_members(record["pid"]) == []
    assert not (data_dir / PID_FILE).exists()
    # nothing left to stop: says so, succeeds
    assert "no Label Studio runs for" in launcher("stop", "--data-dir", str(data_dir)).stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_to_the_foreground_launcher_stops_label_studio(served, tmp_path, sig):
    data_dir, outputs, port = seeded_data_dir(Path(served["data_dir"]), tmp_path / "data"), tmp_path, free_port()
    out = tmp_path / "launcher.out"
    with open(out, "w") as f:
        proc = subprocess.Popen(
            [*SERVER, *server_args(port, data_dir, outputs)], cwd=REPO, stdout=f, stderr=subprocess.STDOUT, text=True
        )
    try:
        deadline = time.monotonic() + 300
        while "Ctrl-C stops it." not in out.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.5)
        server = json.loads((data_dir / PID_FILE).read_text())["pid"]
        pids = tree(proc.pid, server)
        assert server in pids and len(pids) >= 2
        assert_no_secret_in_cmdlines(pids, data_dir)  # the launcher's own, and everything it started
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 128 + sig
        assert f"bpsrun: {sig.name}: stopping Label Studio" in out.read_text()
        assert listeners(port) == []
        assert tree(*pids) == set()
        assert not (data_dir / PID_FILE).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        stray = json.loads((data_dir / PID_FILE).read_text())["pid"] if (data_dir / PID_FILE).exists() else None
        if stray and group_members(stray):
            os.killpg(stray, signal.SIGKILL)


def test_a_failed_start_shows_the_log(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / VENV_MARKER).write_text("")
    exe = venv / "bin" / "label-studio"
    exe.write_text("#!/bin/sh\necho 'django.db.utils.OperationalError: unable to open database file'\nexit 1\n")
    exe.chmod(0o755)
    proc = launcher(*server_args(free_port(), tmp_path / "data", tmp_path, venv))
    assert proc.returncode == 2
    log = tmp_path / "data" / LOG_FILE
    assert proc.stderr.startswith(f"bpsrun: error: Label Studio exited before it was ready; the last lines of {log}:")
    assert "  | django.db.utils.OperationalError: unable to open database file" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / PID_FILE).exists()


def test_an_unreachable_package_index_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env |= {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_CONFIG_FILE": os.devnull, "PIP_RETRIES": "1"}
    venv = tmp_path / "fresh-venv"
    proc = launcher(*server_args(free_port(), tmp_path / "data", tmp_path, venv), env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("bpsrun: error:")]
    assert errors == [proc.stderr.strip().splitlines()[-1]], proc.stderr
    assert errors[0].startswith(
        f"bpsrun: error: cannot install label-studio==1.23.2 into {venv}: the package index "
        "http://127.0.0.1:9/simple is unreachable (connection refused); set PIP_INDEX_URL"
    )
    assert errors[0].endswith(f"pip's output: {venv / 'bpsrun-install.log'}")
    assert not (tmp_path / "data" / PID_FILE).exists()


PIP_CRASH = """Collecting label-studio==1.23.2
ERROR: Exception:
Traceback (most recent call last):
  File "pip/_internal/cli/base_command.py", line 180, in exc_logging_wrapper
pip._vendor.urllib3.exceptions.ProtocolError: ("Connection broken: IncompleteRead(1 bytes read, 9 more expected)")
"""


def crashing_pip(venv: Path, crashes: int, seconds: float = 0) -> Path:
    """A bpsrun-made environment whose python (standing in for its pip) crashes `crashes` times, then installs
    after `seconds`; each call appends a line to the returned file."""
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    (venv / "bin" / "pip").touch()  # a whole environment: only pip's install is left
    (venv / VENV_MARKER).write_text("made by the test\n")
    (venv / "crash.txt").write_text(PIP_CRASH)
    calls = venv / "calls"
    calls.unlink(missing_ok=True)
    python = venv / "bin" / "python"
    python.write_text(
        f"#!/bin/sh\necho call >> {calls}\n"
        f'if [ "$(wc -l < {calls})" -gt {crashes} ]; then sleep {seconds}; touch {venv}/bin/label-studio; exit 0; fi\n'
        f"cat {venv / 'crash.txt'}; exit 2\n"
    )
    python.chmod(0o755)
    return calls


def test_a_pip_crash_is_retried_once_then_named_by_its_exception(tmp_path):
    """pip retries a refused connection itself but crashes on a download cut off halfway: one more try, and a
    second crash is reported by the exception's own line, not by pip's `Exception:` header."""
    once = crashing_pip(tmp_path / "once", crashes=1)
    assert ensure_venv(tmp_path / "once") == tmp_path / "once" / "bin" / "label-studio"
    assert once.read_text().count("call") == 2

    twice = crashing_pip(tmp_path / "twice", crashes=2)
    with pytest.raises(BpsrunError) as err:
        ensure_venv(tmp_path / "twice")
    assert twice.read_text().count("call") == 2  # one retry, no more
    assert not (tmp_path / "twice" / "bin" / "label-studio").exists()
    assert 'pip failed (pip._vendor.urllib3.exceptions.ProtocolError: ("Connection broken: IncompleteRead' in str(
        err.value
    )


def installing(venv: Path, until: Path) -> subprocess.Popen:
    """`ensure_venv(venv)` in a process of its own (and its own process group), once `until` exists."""
    code = f"from bpsrun.label.environment import ensure_venv; ensure_venv({str(venv)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not until.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    return proc


def test_an_environment_of_ours_cut_short_is_rebuilt_and_a_foreign_folder_refused(tmp_path, monkeypatch):
    """A creation killed before ensurepip finished (seen in CI) keeps our marker, so the next start rebuilds the
    environment instead of refusing it as someone else's folder; a folder without the marker is left alone."""
    for key in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(key)
    for key, value in {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_CONFIG_FILE": os.devnull,
                       "PIP_RETRIES": "1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    venv = tmp_path / "cut-short"
    creating = installing(venv, until=venv / "bin" / "python")  # linked before ensurepip starts
    os.killpg(creating.pid, signal.SIGKILL)  # with its ensurepip
    creating.wait()
    assert not (venv / "bin" / "pip").exists()  # really cut short

    pythons = []
    for _ in range(2):  # rebuilt once, then only pip is run again
        with pytest.raises(BpsrunError, match=r"http://127.0.0.1:9/simple is unreachable \(connection refused\)"):
            ensure_venv(venv)
        assert (venv / "bin" / "pip").exists() and (venv / VENV_MARKER).exists()
        assert (venv / INSTALL_LOG).exists()
        pythons.append((venv / "bin" / "python").lstat().st_ino)
    assert pythons[0] == pythons[1]

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine\n")
    with pytest.raises(BpsrunError, match=f"--venv {theirs} exists but holds no label-studio and was not made by"):
        ensure_venv(theirs)
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]


def test_a_disk_without_room_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    from bpsrun.label import environment

    monkeypatch.setattr(environment, "NEEDED_BYTES", shutil.disk_usage(tmp_path).total + 1)  # more than it holds
    venv = tmp_path / "new"
    with pytest.raises(BpsrunError, match=f"it needs about [0-9.]+ GB free and {tmp_path} has [0-9.]+ GB"):
        ensure_venv(venv)
    assert not venv.exists()


def test_a_start_waits_for_the_pip_of_a_killed_start_instead_of_racing_it(tmp_path):
    """The launcher killed while its pip runs (a test's timeout did this in CI) leaves pip running: the next start
    waits for that pip's lock, then finds label-studio installed, and runs no pip of its own."""
    venv = tmp_path / "venv"
    calls = crashing_pip(venv, crashes=0, seconds=3)
    first = installing(venv, until=calls)
    first.kill()  # pip goes on, an orphan
    first.wait()
    assert not (venv / "bin" / "label-studio").exists()
    assert ensure_venv(venv) == venv / "bin" / "label-studio"
    assert calls.read_text().count("call") == 1
