"""Start a local Label Studio for bpsrun: its own virtual environment, offline, local files served.

    python -m bpsrun.label.server [--port 8080] [--document-root outputs] [--data-dir outputs/labelstudio]

Label Studio pins old numpy, pyarrow and pytz, so it lives in its own virtual environment (created on first
use with `pip install label-studio==<LABEL_STUDIO_VERSION>`). The first start creates a user and a legacy API
token (Label Studio 1.23 disables legacy tokens unless enabled on first start); the token is kept in
`<data-dir>/bpsrun-token` (mode 600) and never printed: `export LABEL_STUDIO_API_KEY=$(cat <data-dir>/bpsrun-token)`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
import venv
from pathlib import Path

import requests

LABEL_STUDIO_VERSION = "1.23.2"
DEFAULT_VENV = Path(".venv-labelstudio")
USERNAME = "labeler@bpsrun.local"


def ensure_venv(path: Path) -> Path:
    """The `label-studio` executable, installing it into its own environment when missing."""
    exe = path / "bin" / "label-studio"
    if not exe.exists():
        print(f"installing label-studio {LABEL_STUDIO_VERSION} into {path} (about a minute) ...", file=sys.stderr)
        venv.create(path, with_pip=True, clear=True)
        pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", f"label-studio=={LABEL_STUDIO_VERSION}"]
        subprocess.run(pip, check=True)
    return exe


def secret_file(path: Path, nbytes: int) -> str:
    """A random secret kept in `path` (mode 600), created once: the same token and password on every start."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(nbytes))
    return path.read_text().strip()


def start(
    venv_dir: Path, port: int, data_dir: Path, document_root: Path, log_file: Path | None = None
) -> subprocess.Popen:
    exe = ensure_venv(venv_dir)
    data_dir = data_dir.resolve()
    token = secret_file(data_dir / "bpsrun-token", 20)  # 40 hex characters, Label Studio's token format
    password = secret_file(data_dir / "bpsrun-password", 12)
    env = {
        **os.environ,
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root.resolve()),
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
    }
    cmd = [str(exe), "start", "--no-browser", "--port", str(port), "--internal-host", "127.0.0.1"]
    cmd += ["--host", f"http://127.0.0.1:{port}", "--data-dir", str(data_dir)]
    cmd += ["--username", USERNAME, "--password", password, "--user-token", token]
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"label-studio exited with code {proc.returncode} before it was ready")
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(f"label-studio at {url} was not ready after {timeout_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--document-root", type=Path, default=Path("outputs"), help="labeling.document_root")
    parser.add_argument("--data-dir", type=Path, default=Path("outputs/labelstudio"))
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    proc = start(args.venv, args.port, args.data_dir, args.document_root)
    wait_healthy(url, proc)
    token_file = (args.data_dir / "bpsrun-token").resolve()
    print(
        f"Label Studio is up at {url} (user {USERNAME}, password in {args.data_dir.resolve() / 'bpsrun-password'}).\n"
        f"  export LABEL_STUDIO_API_KEY=$(cat {token_file})\n"
        f"  python -m bpsrun labeling=labelstudio labeling.url={url} labeling.document_root={args.document_root.resolve()}\n"
        f"Ctrl-C stops it.",
        flush=True,
    )
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
