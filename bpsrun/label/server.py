"""Label Studio for bpsrun, as a service: its own virtual environment, offline, local files served.

    python -m bpsrun.label.server [--detach] [--reuse] [--port 8080] [--document-root outputs]
                                  [--data-dir outputs/labelstudio] [--venv .venv-labelstudio]
    python -m bpsrun.label.server stop   [--data-dir outputs/labelstudio]
    python -m bpsrun.label.server status [--data-dir outputs/labelstudio]
    python -m bpsrun.label.server add-user --email ann@lab.org [--data-dir outputs/labelstudio]

In the foreground Ctrl-C (SIGINT), SIGTERM and SIGHUP stop Label Studio. `--detach` returns once the server
answers on --port and the listening socket belongs to the Label Studio this command started; `stop` ends it
and every process it started (its process group). `--reuse` accepts the data dir's own running server when its
port and document root match (so the same command can be run again).

Label Studio pins old numpy, pyarrow and pytz, so it lives in its own virtual environment (`--venv`, created on
first use with `pip install label-studio==<LABEL_STUDIO_VERSION>` by bpsrun.label.environment). The first start
creates a user and a legacy API token; user, password and token reach Label Studio through its environment, never
its command line. They are kept in the data dir (`bpsrun-token`, `bpsrun-password`, mode 600), with the pid file
(`bpsrun-server.json`) and Label Studio's output (`label-studio.log`). The token is never printed:
`export LABEL_STUDIO_API_KEY=$(cat <data-dir>/bpsrun-token)`.

`add-user` signs a second annotator up to the running server through the organization's invite link (the link
Organization > Add Members copies), so they share its projects; their password and legacy API token go to
`<data-dir>/bpsrun-users/<email>.password` and `.token` (mode 600), never to the screen.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bpsrun.errors import BpsrunError
from bpsrun.files import pid_alive
from bpsrun.label.environment import DEFAULT_VENV, PACKAGE, ensure_venv
from bpsrun.label.studio_api import error_text

DEFAULT_DATA_DIR = Path("outputs/labelstudio")
DEFAULT_DOCUMENT_ROOT = Path("outputs")
USERNAME = "labeler@bpsrun.local"
TOKEN_FILE = "bpsrun-token"
PASSWORD_FILE = "bpsrun-password"
PID_FILE = "bpsrun-server.json"
LOG_FILE = "label-studio.log"
USERS_DIR = "bpsrun-users"  # in the data dir: each added annotator's <email>.token and <email>.password
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
ME = "python -m bpsrun.label.server"


def secret_file(path: Path, nbytes: int) -> str:
    """A random secret kept in `path` (mode 600), created once: the same token and password on every start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(nbytes))
    return path.read_text().strip()


# -- processes and ports, from /proc (Linux); elsewhere the checks that need it are skipped ----------------------


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks) of a process, None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the fields after the command name, from field 3 (state)
    return fields[0], int(fields[2]), int(fields[19])


def alive(pid: int, starttime: int | None = None) -> bool:
    """The process runs (a zombie does not), and is the one that started at `starttime` when given."""
    stat = proc_stat(pid)
    if stat is None:
        if Path("/proc/self/stat").exists():
            return False
        return pid_alive(pid)  # no /proc: the best there is
    return stat[0] not in "ZX" and (starttime is None or stat[2] == starttime)


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group."""
    if not Path("/proc/self/stat").exists():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None and stat[1] == pgid and stat[0] not in "ZX":
                members.append(int(entry.name))
    return sorted(members)


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def listening_inodes(port: int) -> set[str]:
    """The socket inodes listening on TCP `port`, any address, IPv4 or IPv6."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    return inodes


def holders(inodes: set[str], pids: list[int] | None = None) -> list[int]:
    """The processes (of `pids`, default all this user may inspect) holding one of these socket inodes."""
    if not inodes:
        return []
    wanted = {f"socket:[{i}]" for i in inodes}
    if pids is None:
        pids = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]
    found = []
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in wanted:
                    found.append(pid)
                    break
            except OSError:
                continue
    return found


def port_taken(port: int) -> bool:
    if listening_inodes(port):
        return True
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def serves_port(pgid: int, port: int) -> bool:
    """A process of this group (the Label Studio started here) holds the socket listening on `port`."""
    if not Path("/proc/net/tcp").exists():
        return True  # cannot tell; the health check has to do
    return bool(holders(listening_inodes(port), group_members(pgid)))


def describe(pid: int) -> str:
    """`pid 123 (label-studio serving outputs/labelstudio)`, or the start of its command line."""
    args = cmdline(pid)
    if any(a.endswith("label-studio") for a in args) and "--data-dir" in args[:-1]:
        return f"pid {pid}, a Label Studio serving {args[args.index('--data-dir') + 1]}"
    command = shlex.join(args)
    return f"pid {pid}: {command[:77] + '...' if len(command) > 80 else command}" if args else f"pid {pid}"


def healthy(url: str) -> bool:
    try:
        with requests.Session() as http:
            http.trust_env = False  # a proxy from the environment must not answer for 127.0.0.1
            return http.get(f"{url}/health", timeout=2).ok
    except requests.RequestException:
        return False


# -- the pid file ---------------------------------------------------------------------------------------------


def read_record(data_dir: Path) -> dict[str, Any] | None:
    """The pid file's record when the server (or the launcher starting it) it names still runs; a stale pid
    file is removed."""
    path = data_dir / PID_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        record = {}
    if "pid" in record and alive(record["pid"], record.get("starttime")):
        return record
    if "pid" not in record and "launcher" in record and alive(record["launcher"], record.get("launcher_start")):
        return record  # still being started
    path.unlink(missing_ok=True)
    return None


def write_record(data_dir: Path, record: dict[str, Any], exclusive: bool = False) -> None:
    path = data_dir / PID_FILE
    text = json.dumps(record, indent=1) + "\n"
    if exclusive:
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "w") as f:
            f.write(text)
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def remove_record(data_dir: Path, pid: int) -> None:
    """The pid file, when it names this process (the server or its launcher)."""
    path = data_dir / PID_FILE
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(path.read_text())
        if pid in (record.get("pid"), record.get("launcher")):
            path.unlink()


# -- start, wait, stop ----------------------------------------------------------------------------------------


class Stopped(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame: Any) -> None:
    raise Stopped(signum)


def set_stop_signals(handler: Any) -> dict[int, Any]:
    """SIGTERM, SIGINT and SIGHUP to `handler`; the previous handlers."""
    return {s: signal.signal(s, handler) for s in STOP_SIGNALS}


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the foreground launcher dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def launch(
    exe: Path, port: int, data_dir: Path, document_root: Path, log: Path, tie_to_parent: bool
) -> subprocess.Popen:
    """Label Studio in its own session (process group), its output appended to `log`. The secrets go through
    the environment only."""
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "LABEL_STUDIO_USERNAME": USERNAME,
        "LABEL_STUDIO_PASSWORD": secret_file(data_dir / PASSWORD_FILE, 12),
        "LABEL_STUDIO_USER_TOKEN": secret_file(data_dir / TOKEN_FILE, 20),  # 40 hex characters, like Label Studio's
        "LABEL_STUDIO_HOST": url,
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [str(exe), "start", "--no-browser", "--port", str(port), "--internal-host", "127.0.0.1"]
    cmd += ["--host", url, "--data-dir", str(data_dir)]
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if tie_to_parent else None,
        )


def log_tail(log: Path, offset: int, lines: int = 15) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join("  | " + line for line in text.rstrip().splitlines()[-lines:])


def wait_ready(
    url: str, port: int, pgid: int, running: Callable[[], bool], log: Path, offset: int, timeout_s: float
) -> None:
    """Until the Label Studio of process group `pgid` listens on `port` and answers its health check."""
    deadline = time.monotonic() + timeout_s
    moved = f"Port {port} is in use"
    while True:
        if not running():
            raise BpsrunError(
                f"Label Studio exited before it was ready; the last lines of {log}:\n{log_tail(log, offset)}"
            )
        if serves_port(pgid, port) and healthy(url):
            return
        tail = log_tail(log, offset, 1000)
        if moved in tail:  # Label Studio moves to the next free port by itself; this one is taken
            holder = holders(listening_inodes(port))
            who = f" by {describe(holder[0])}" if holder else ""
            raise BpsrunError(f"port {port} was taken{who} while Label Studio started; choose another --port")
        if time.monotonic() > deadline:
            raise BpsrunError(
                f"Label Studio did not answer at {url} within {timeout_s:.0f} s; the last lines of {log}:\n"
                f"{log_tail(log, offset)}"
            )
        time.sleep(0.5)


def stop_group(pgid: int, timeout_s: float = 20) -> None:
    """SIGTERM to the whole process group, SIGKILL to what is left after `timeout_s`."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not group_members(pgid):
            return


def ready_message(record: dict[str, Any], already: bool = False) -> str:
    data_dir = Path(record["data_dir"])
    url = record["url"]
    data = shlex.quote(str(data_dir))
    head = "is already running" if already else "is up"
    return (
        f"Label Studio {head} at {url} (pid {record['pid']}, serving files below {record['document_root']}; "
        f"log {data_dir / LOG_FILE})\n"
        f"  user {USERNAME}, password in {data_dir / PASSWORD_FILE}\n"
        f"  export LABEL_STUDIO_API_KEY=$(cat {shlex.quote(str(data_dir / TOKEN_FILE))})\n"
        f"  python -m bpsrun labeling=labelstudio labeling.url={url} "
        f"labeling.document_root={shlex.quote(record['document_root'])}\n"
        f"stop it: {ME} stop --data-dir {data}"
    )


def serve(args: argparse.Namespace) -> int:
    data_dir = args.data_dir.resolve()
    document_root = args.document_root.resolve()
    port = args.port
    url = f"http://127.0.0.1:{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    record = read_record(data_dir)
    if record is not None:
        return served_already(args, data_dir, document_root, record)
    if port_taken(port):
        raise BpsrunError(busy_port(port))
    document_root.mkdir(parents=True, exist_ok=True)
    me = {"launcher": os.getpid(), "launcher_start": (proc_stat(os.getpid()) or ("", 0, None))[2], "port": port}
    try:
        write_record(data_dir, me, exclusive=True)
    except FileExistsError:
        raise BpsrunError(f"{data_dir} is being started by another launcher ({data_dir / PID_FILE})") from None
    proc = None
    detached = False
    log = data_dir / LOG_FILE
    previous = set_stop_signals(_raise_stopped)  # each of them runs the cleanup below
    try:
        exe = ensure_venv(args.venv)
        with open(log, "ab") as out:
            offset = out.tell()
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            out.write(f"----- {stamp} bpsrun: starting Label Studio on port {port} -----\n".encode())
        proc = launch(exe, port, data_dir, document_root, log, tie_to_parent=not args.detach)
        record = {
            "pid": proc.pid,
            "starttime": (proc_stat(proc.pid) or ("", 0, None))[2],
            "port": port,
            "url": url,
            "document_root": str(document_root),
            "data_dir": str(data_dir),
        }
        if not args.detach:  # `stop` asks this launcher to stop it
            record.update(launcher=me["launcher"], launcher_start=me["launcher_start"])
        write_record(data_dir, record)
        wait_ready(url, port, proc.pid, lambda: proc.poll() is None, log, offset, args.timeout)
        print(ready_message(record), flush=True)
        if args.detach:
            detached = True
            return 0
        print("Ctrl-C stops it.", flush=True)
        code = proc.wait()
        raise BpsrunError(f"Label Studio exited with code {code}; the last lines of {log}:\n{log_tail(log, offset)}")
    except Stopped as stop:
        set_stop_signals(signal.SIG_IGN)
        print(f"bpsrun: {stop}: stopping Label Studio", file=sys.stderr, flush=True)
        return 128 + stop.signum
    finally:
        set_stop_signals(signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        if not detached:
            if proc is not None:
                stop_group(proc.pid)
                proc.wait()
                remove_record(data_dir, proc.pid)
            remove_record(data_dir, os.getpid())
        for s, h in previous.items():
            signal.signal(s, h)


def busy_port(port: int) -> str:
    found = holders(listening_inodes(port))
    if not found:
        return f"port {port} is in use (by a process this user cannot inspect); stop it or choose another --port"
    args = cmdline(found[0])
    fix = "stop that process or choose another --port"
    if "--data-dir" in args[:-1]:
        other = Path(args[args.index("--data-dir") + 1])
        if (other / PID_FILE).exists():
            fix = f"use it, stop it ({ME} stop --data-dir {shlex.quote(str(other))}) or choose another --port"
    return f"port {port} is in use by {describe(found[0])}; {fix}"


def served_already(args: argparse.Namespace, data_dir: Path, document_root: Path, record: dict[str, Any]) -> int:
    """--reuse with the same port and document root: report the running server (once it answers); else refuse."""
    where = f"pid {record.get('pid', record.get('launcher'))} on port {record.get('port')}"
    stop = f"{ME} stop --data-dir {shlex.quote(str(data_dir))}"
    same = record.get("port") == args.port and record.get("document_root", str(document_root)) == str(document_root)
    if not args.reuse or not same:
        hint = " (--reuse accepts it)" if same else ""
        raise BpsrunError(
            f"{data_dir} is already served by Label Studio {where}, document root {record.get('document_root')}; "
            f"use it{hint}, or stop it first: {stop}"
        )
    deadline = time.monotonic() + args.timeout
    while "pid" not in record:  # its launcher is still starting it
        if time.monotonic() > deadline:
            raise BpsrunError(f"{data_dir}: Label Studio is still being started by {where}; try again, or: {stop}")
        time.sleep(0.5)
        record = read_record(data_dir)
        if record is None:
            raise BpsrunError(f"{data_dir}: the Label Studio being started by another launcher did not come up")
    pid, log = record["pid"], data_dir / LOG_FILE
    wait_ready(record["url"], args.port, pid, lambda: alive(pid, record.get("starttime")), log, 0, args.timeout)
    print(ready_message(record, already=True), flush=True)
    return 0


def stop(args: argparse.Namespace) -> int:
    data_dir = args.data_dir.resolve()
    record = read_record(data_dir) if data_dir.is_dir() else None
    if record is None:
        print(f"no Label Studio runs for {data_dir} (no live pid file {data_dir / PID_FILE})", flush=True)
        return 0
    launcher = record.get("launcher")
    if launcher and alive(launcher, record.get("launcher_start")):
        os.kill(launcher, signal.SIGTERM)  # a launcher (in the foreground, or starting) stops what it started
        deadline = time.monotonic() + 40
        while alive(launcher, record.get("launcher_start")) and time.monotonic() < deadline:
            time.sleep(0.2)
    if "pid" not in record:
        print(f"stopped the launcher (pid {launcher}) that was starting Label Studio for {data_dir}", flush=True)
        return 0
    stop_group(record["pid"])
    remove_record(data_dir, record["pid"])
    print(f"stopped Label Studio (pid {record['pid']}) at {record['url']}", flush=True)
    return 0


def status(args: argparse.Namespace) -> int:
    data_dir = args.data_dir.resolve()
    record = read_record(data_dir) if data_dir.is_dir() else None
    if record is None or "pid" not in record:
        print(f"no Label Studio runs for {data_dir}" + ("" if record is None else " yet (starting)"), flush=True)
        return 1
    up = healthy(record["url"]) and serves_port(record["pid"], record["port"])
    print(f"Label Studio (pid {record['pid']}) at {record['url']}: {'answering' if up else 'not answering'}")
    return 0 if up else 1


# -- a second annotator -------------------------------------------------------------------------------------------


def user_files(data_dir: Path, email: str) -> tuple[Path, Path]:
    """Where an added annotator's token and password are kept."""
    folder = data_dir / USERS_DIR
    return folder / f"{email}.token", folder / f"{email}.password"


def whoami(http: requests.Session, url: str, token: str) -> dict[str, Any] | None:
    """The user a legacy token authenticates as, None when Label Studio refuses it."""
    response = http.get(f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {token}"}, timeout=30)
    return response.json() if response.ok else None


def form_errors(page: str) -> str:
    """The field errors of Label Studio's signup page (`<ul class="field_errors"><li>...`)."""
    found = [
        " ".join(re.sub(r"<[^>]+>", " ", li).split())
        for ul in re.findall(r'class="field_errors">(.*?)</ul>', page, re.S)
        for li in re.findall(r"<li>(.*?)</li>", ul, re.S)
    ]
    return "; ".join(found) or "no reason given"


def signup(http: requests.Session, url: str, admin: str, email: str, password: str) -> str:
    """A new user of the admin's organization, signed up through its invite link; their legacy API token.
    (POST /api/users/ and `label-studio user` create users of no organization, who see no project.)"""
    invite = http.get(f"{url}/api/invite", headers={"Authorization": f"Token {admin}"}, timeout=30)
    if not invite.ok:
        raise BpsrunError(
            f"Label Studio at {url} gave no invite link (HTTP {invite.status_code}: {error_text(invite)})"
        )
    link = f"{url}/user/signup/?token={invite.json()['token']}"
    http.get(link, timeout=30)  # the CSRF cookie the form has to send back
    form = {"email": email, "password": password, "csrfmiddlewaretoken": http.cookies.get("csrftoken", "")}
    done = http.post(link, data=form, headers={"Referer": link}, allow_redirects=False, timeout=30)
    if done.status_code != 302:  # the form again, with its errors
        why = form_errors(done.text)
        if "already exists" in why:
            why += " (they copy their token from Account & Settings in Label Studio; or add another email)"
        raise BpsrunError(f"Label Studio at {url} refused to sign up {email}: {why}")
    token = http.get(f"{url}/api/current-user/token", timeout=30)  # as the new user: the signup logged them in
    if not token.ok:
        raise BpsrunError(f"Label Studio at {url} signed up {email} but gave no token: {error_text(token)}")
    return str(token.json()["token"])


def add_user(args: argparse.Namespace) -> int:
    """A second annotator in the organization of the data dir's running server; their secrets in the data dir."""
    data_dir = args.data_dir.resolve()
    if not args.email:
        raise BpsrunError(f"add-user needs --email: the annotator's address, their login ({ME} add-user --email ...)")
    record = read_record(data_dir) if data_dir.is_dir() else None
    if record is None or "pid" not in record:
        raise BpsrunError(f"no Label Studio runs for {data_dir}; start it first: {ME} --detach --reuse")
    url, email = record["url"], args.email.strip().lower()  # Label Studio keeps emails in lower case
    token_file, password_file = user_files(data_dir, email)
    with requests.Session() as http:
        http.trust_env = False  # a proxy from the environment must not answer for 127.0.0.1
        if token_file.exists() and (whoami(http, url, token_file.read_text().strip()) or {}).get("email") == email:
            print(user_message(url, email, token_file, password_file, already=True), flush=True)
            return 0
        admin = (data_dir / TOKEN_FILE).read_text().strip()
        password = secrets.token_hex(12)
        token = signup(http, url, admin, email, password)
        if not same_organization(http, url, token, admin):
            raise BpsrunError(f"Label Studio at {url} signed up {email} outside the organization of {USERNAME}")
    write_secret(password_file, password)
    write_secret(token_file, token)
    print(user_message(url, email, token_file, password_file), flush=True)
    return 0


def write_secret(path: Path, text: str) -> None:
    """`text` into `path`, readable by this user only from the start (mode 600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(text)


def same_organization(http: requests.Session, url: str, token: str, admin: str) -> bool:
    """Both tokens work and their users are of one organization (and so see the same projects)."""
    theirs, mine = whoami(http, url, token), whoami(http, url, admin)
    return bool(theirs and mine) and theirs.get("active_organization") == mine.get("active_organization")


def user_message(url: str, email: str, token_file: Path, password_file: Path, already: bool = False) -> str:
    head = "is already a user" if already else "can label now"
    return (
        f"{email} {head} at {url} (the organization of {USERNAME}: every bpsrun project), password in "
        f"{password_file}\n"
        f"  their API token: export LABEL_STUDIO_API_KEY=$(cat {shlex.quote(str(token_file))})"
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=ME, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", choices=["start", "stop", "status", "add-user"], default="start")
    p.add_argument("--email", help="add-user: the new annotator's email, their login")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--document-root",
        type=Path,
        default=DEFAULT_DOCUMENT_ROOT,
        help="the folder Label Studio serves local files below; labeling.document_root must be the same (default: %(default)s)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="Label Studio's database, secrets, pid file and log (default: %(default)s)",
    )
    p.add_argument(
        "--venv",
        type=Path,
        default=DEFAULT_VENV,
        help=f"Label Studio's own virtual environment, created with {PACKAGE} when missing (default: %(default)s)",
    )
    p.add_argument("--detach", action="store_true", help="return once the server is up; stop it with `stop`")
    p.add_argument(
        "--reuse", action="store_true", help="accept the data dir's running server (same port and document root)"
    )
    p.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for the server to answer (default: %(default)s)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return {"start": serve, "stop": stop, "status": status, "add-user": add_user}[args.command](args)
    except BpsrunError as exc:
        print(f"bpsrun: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:  # outside the server's own handling (e.g. while reading the pid file)
        return 130


if __name__ == "__main__":
    sys.exit(main())
