import contextlib
import io
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from unittest import mock

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from bpsrun.numerics import KERNELS

# The default trainer.cpu_kernels, pinned before this process imports torch: a campaign run in-process
# (run_command, run_in_process) then computes what the command computes in its own process.
os.environ.update(KERNELS["avx2"])

from bpsrun.campaign import Campaign  # noqa: E402
from bpsrun.data.datamodule import StackRows  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# A campaign small enough for CI: 60 synthetic images, 8 picks a round, two epochs everywhere.
TINY = [
    "selection.n_samples=8",
    "trainer.max_epochs=2",
    "trainer.min_samples_per_epoch=16",
    "embedding.epochs=2",
    "embedding.image_size=32",
    "model.image_size=48",
    "tracking.log_model=false",  # tests/test_serve.py turns it on: MLflow's model format costs seconds a process
]

ROUND_ARTIFACTS = {"selected.txt", "labels.json", "metrics.json", "confusion.png", "picks.png", "config.yaml",
                   "predictions.zip"}  # a round's MLflow artifacts (the TINY settings log no model)  # fmt: skip


# Test files that share the session's one Label Studio (and its virtual environment, made on first use): one xdist
# worker runs them all. Every other file also stays on one worker, so its module fixtures are built once.
LABEL_STUDIO_FILES = {"test_labelstudio_annotators", "test_labelstudio_browser", "test_labelstudio_live",
                      "test_labelstudio_server"}  # fmt: skip


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups (`-n auto --dist loadgroup`: pyproject)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.stem
        item.add_marker(pytest.mark.xdist_group("labelstudio" if module in LABEL_STUDIO_FILES else module))
    # longest first, so that no worker is left with a long file at the end while the other waits: the Label Studio
    # group (its environment, its server, a browser), then the files of slow tests, then the fast ones
    items.sort(key=lambda item: (item.path.stem not in LABEL_STUDIO_FILES, item.get_closest_marker("slow") is None))


def pytest_xdist_node_collection_finished(node, ids: list[str]) -> None:
    """On the controller: each id a worker collected carries its group, unless xdist could not append it."""
    if node.config.getvalue("dist") == "loadgroup" and ids and "@" not in ids[0]:
        pytest.exit(
            f"pytest {pytest.__version__} with this pytest-xdist ignores --dist loadgroup (no test id carries its "
            "group): every file would build its fixtures on each worker; install pytest<9.2 (pyproject.toml)",
            returncode=4,
        )


def tiny_overrides(overrides: tuple[str, ...], outputs: Path, data: Path | None) -> list[str]:
    """The TINY settings and, unless a dataset is named, 60 synthetic images; then the test's own overrides."""
    rest = list(overrides)
    if not any(o.startswith("dataset=") for o in rest):
        rest.insert(0, "dataset.num_images=60")
    return [f"paths.outputs={outputs}", *TINY, *rest] + ([f"paths.data={data}"] if data is not None else [])


def command_args(*overrides: str, outputs: Path, data: Path | None = None) -> list[str]:
    """What follows `bpsrun` on the command line: Hydra's flags, then the TINY settings and the overrides."""
    flags = [o for o in overrides if o.startswith("-")]  # Hydra wants -m before the overrides
    rest = tuple(o for o in overrides if not o.startswith("-"))
    return [*flags, *tiny_overrides(rest, outputs, data)]


def bpsrun_command(*overrides: str, outputs: Path, data: Path | None = None) -> list[str]:
    """`python -m bpsrun` with the TINY settings."""
    return [sys.executable, "-m", "bpsrun", *command_args(*overrides, outputs=outputs, data=data)]


def checked(proc: subprocess.CompletedProcess, check: bool) -> subprocess.CompletedProcess:
    """`proc`, or, when `check` and it failed, an AssertionError with the ends of its output."""
    if check and proc.returncode != 0:
        raise AssertionError(f"bpsrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def compose_config(*overrides: str, outputs: Path, data: Path | None = None, conf: Path | None = None) -> DictConfig:
    """The real config, composed as the command composes it (Hydra's compose API), with the TINY settings.
    `conf` adds a folder of the test's own config choices to Hydra's search path."""
    extra = [f"hydra.searchpath=[file://{conf}]"] if conf is not None else []
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=[*extra, *tiny_overrides(overrides, outputs, data)])


def run_in_process(*overrides: str, outputs: Path, data: Path | None = None, conf: Path | None = None) -> str:
    """A campaign run in this process (the stages, not the command line); what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        Campaign(compose_config(*overrides, outputs=outputs, data=data, conf=conf)).run()
    return out.getvalue()


def run_command(
    *overrides: str, outputs: Path, data: Path | None = None, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The command as a user would type it (`bpsrun.__main__.main` with its argv: Hydra's parsing, logging and
    exit codes), in this process: a subprocess costs 10-12 s of imports, this ~1 s. `env` is set for the run only.
    Tests of what only a process shows (signals, kills, pinned kernels, the installed entry point) use
    `run_bpsrun`."""
    from bpsrun.__main__ import main

    argv = ["bpsrun", *command_args(*overrides, outputs=outputs, data=data)]
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.object(sys, "argv", argv),
        mock.patch.dict(os.environ, env or {}),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return checked(subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue()), check)


def run_bpsrun(
    *overrides: str, outputs: Path, data: Path | None = None, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The real command, in a subprocess, as a user would type it."""
    args = bpsrun_command(*overrides, outputs=outputs, data=data)
    proc = subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})}
    )
    return checked(proc, check)


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory) -> Path:
    """Generated datasets shared by the end-to-end tests (generation is deterministic)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def stack_reads(monkeypatch) -> dict[int, set[int]]:
    """id(stack) -> the manifest rows read from that PoolStack through StackRows (every learner's batches) while
    the test runs: what a learner that must never see a validation image did read."""
    reads: dict[int, set[int]] = defaultdict(set)
    original = StackRows.__getitem__

    def recording(self: StackRows, i: int):
        reads[id(self.stack)].add(int(self.stack.rows[i]))
        return original(self, i)

    monkeypatch.setattr(StackRows, "__getitem__", recording)
    return reads


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of the campaign (the lock file's content is the last holder's pid, not state)."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory) -> dict:
    """One detached Label Studio for every test module that talks to one (starting one costs ~30 s on 2 cores):
    its pid file's record (url, pid, port, data_dir, document_root, stdout) and `token`. Tests keep apart by
    campaign name under the shared document root; a test that stops a server starts its own."""
    from tests.test_labelstudio_server import free_port, start_detached, stop_detached

    root = tmp_path_factory.mktemp("label-studio")
    (root / "outputs").mkdir()
    record = start_detached(free_port(), root / "data", root / "outputs")
    try:
        yield {**record, "token": (root / "data" / "bpsrun-token").read_text().strip()}
    finally:
        stop_detached(root / "data")
