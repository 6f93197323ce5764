"""selection/backend=lightly_worker: what can be checked offline, through the real command."""

import socket
from pathlib import Path

import pytest

from tests.conftest import run_command

pytestmark = pytest.mark.slow  # whole campaigns of the command, real servers

TOKEN = "lightly-secret-token-0123456789"
WORKER = (
    "selection=random",
    "selection/backend=lightly_worker",
    "selection.worker.dataset_id=0123456789abcdef01234567",
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def files_containing(folder: Path, text: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_missing_token_is_a_clear_error(tmp_path, shared_data):
    proc = run_command(*WORKER, "round=1", outputs=tmp_path, data=shared_data, check=False, env={"LIGHTLY_TOKEN": ""})
    assert proc.returncode == 2
    assert "needs your Lightly token in the LIGHTLY_TOKEN environment variable" in proc.stderr
    assert not (tmp_path / "synthetic-random-s0" / "round_1" / "selected.txt").exists()


def test_unreachable_server_is_a_clear_error_and_the_token_never_leaks(tmp_path, shared_data):
    server = f"http://127.0.0.1:{closed_port()}"
    env = {"LIGHTLY_TOKEN": TOKEN, "LIGHTLY_SERVER_LOCATION": server}
    proc = run_command(*WORKER, "round=1", outputs=tmp_path, data=shared_data, check=False, env=env)
    assert proc.returncode == 2
    assert f"the Lightly API at {server} failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    assert files_containing(tmp_path, TOKEN) == []  # Hydra's saved configs and logs included
    assert not (tmp_path / "synthetic-random-s0" / "round_1" / "selected.txt").exists()


def test_configs_are_validated_before_the_client_is_called(tmp_path, shared_data):
    # a round config lightly's validator rejects (its own budget below 1) fails there, before any connection to
    # the (unreachable) server
    env = {"LIGHTLY_TOKEN": TOKEN, "LIGHTLY_SERVER_LOCATION": f"http://127.0.0.1:{closed_port()}"}
    proc = run_command(
        *WORKER, "round=1", "+selection.first_round.n_samples=-3", outputs=tmp_path, data=shared_data, check=False,
        env=env,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "invalid Lightly selection config (n_samples" in proc.stderr
    assert "Lightly API" not in proc.stderr
