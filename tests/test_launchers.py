"""Scale-out on real engines: one sweep through Hydra's basic launcher, Ray (a local instance) and submitit_local
gives byte-identical campaigns with the default thread count, whatever CPUs each launcher gave a job (with
`trainer.threads=null` they follow those CPUs), the sweep report still
ends every multirun, and four campaigns through Ray into one real `mlflow server` lose no run and no metric.

Every process a launcher starts (Ray's gcs_server, raylet and workers, submitit's controllers) inherits a token in
its environment; after each sweep no process holding it may be left (any that is gets killed by its pid).
"""

import csv
import json
import os
import re
import shutil
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bpsrun.numerics import torch_threads
from tests.conftest import run_bpsrun
from tests.test_mlflow_server import api, history, pairs, running_mlflow_server, search_runs

pytestmark = pytest.mark.slow  # the command line in subprocesses, a Ray instance, a real mlflow server

CAMPAIGNS = ("synthetic-active-s0", "synthetic-random-s0")
SWEEP = ("-m", "selection=random,active", "seed=0", "round=2")
TOKEN = "BPSRUN_LAUNCHER_TEST"
# no usage report leaves the machine; the instance's own addresses are the loopback's
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}


def processes_with(token: str) -> list[int]:
    """Pids of live processes whose environment holds TOKEN=token (this test's launchers and what they started)."""
    needle = f"{TOKEN}={token}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with suppress(OSError):
                if needle in (proc / "environ").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
    return pids


@contextmanager
def nothing_left_behind() -> Iterator[dict[str, str]]:
    """The environment to run a sweep with; afterwards no process it started may survive (Ray exits with its
    driver, submitit's controllers with their jobs)."""
    token = uuid.uuid4().hex
    try:
        yield {TOKEN: token, **RAY_ENV}
    finally:
        deadline = time.monotonic() + 15  # raylet and workers notice their driver's exit within a few seconds
        while (left := processes_with(token)) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in left:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left running after the sweep: {left}"


@contextmanager
def local_ray() -> Iterator[list[str]]:
    """Overrides for a new Ray instance the launcher starts in its own process (`address=local`: never the cluster
    a `ray start` left on this machine), 2 CPUs, no dashboard, 1 CPU a job, its session files in a folder of ours
    (short: Ray's socket paths must stay under 108 characters)."""
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    try:
        yield [
            "hydra/launcher=ray",
            "hydra.launcher.ray.init.address=local",
            "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false",
            "+hydra.launcher.ray.init._node_ip_address=127.0.0.1",
            f"+hydra.launcher.ray.init._temp_dir={temp}",
            "+hydra.launcher.ray.remote.num_cpus=1",
        ]
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def sweep_dir(outputs: Path) -> Path:
    (sweep,) = (outputs / "multirun").iterdir()
    return sweep


def report_rows(sweep: Path) -> dict[str, dict[str, str]]:
    return {r["strategy"]: r for r in csv.DictReader((sweep / "report" / "summary.csv").open())}


def logged_threads(sweep: Path, campaign: str) -> list[str]:
    log = (sweep / campaign / "__main__.log").read_text()
    return re.findall(r"torch threads: (\d+)", log)


def campaign_files(outputs: Path, campaign: str) -> dict[str, object]:
    """What must not depend on the launcher: every round's metrics (accuracy, confusion, the training curve)
    and picks."""
    files: dict[str, object] = {}
    for round_dir in sorted((outputs / campaign).glob("round_*")):
        files[f"{round_dir.name}/metrics.json"] = json.loads((round_dir / "metrics.json").read_text())
        files[f"{round_dir.name}/selected.txt"] = (round_dir / "selected.txt").read_text()
    return files


def test_torch_threads_are_the_cpus_a_job_was_given(monkeypatch):
    cfg = OmegaConf.create({"trainer": {"threads": None}})
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert torch_threads(cfg) == 4  # the CPUs the process may run on
    for omp, threads in (("3", 3), ("8", 4), ("0", 4), ("2,1", 4)):  # OMP_NUM_THREADS caps; nonsense is ignored
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
        assert torch_threads(cfg) == threads, omp
    cfg.trainer.threads = 6
    assert torch_threads(cfg) == 6  # a set trainer.threads wins


def test_basic_ray_and_submitit_local_give_the_same_campaigns(tmp_path, shared_data):
    """Each launcher as a user runs it: the basic launcher with both cores, Ray with one CPU a task (it sets
    OMP_NUM_THREADS=1), submitit_local with two (`cpus_per_task`). The default `trainer.threads` is the same
    everywhere, so are the floats."""
    results = {}
    with nothing_left_behind() as env:
        results["basic"] = run_bpsrun(*SWEEP, outputs=tmp_path / "basic", data=shared_data, env=env)
    with nothing_left_behind() as env, local_ray() as ray:
        results["ray"] = run_bpsrun(*SWEEP, *ray, outputs=tmp_path / "ray", data=shared_data, env=env)
    with nothing_left_behind() as env:
        submitit = ("hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=2")
        results["submitit_local"] = run_bpsrun(
            *SWEEP, *submitit, outputs=tmp_path / "submitit", data=shared_data, env=env
        )

    out = {name: proc.stdout + proc.stderr for name, proc in results.items()}
    assert "Ray Launcher is launching 2 jobs" in out["ray"] and "Started a local Ray instance" in out["ray"]
    assert "Submitit 'local' sweep output dir" in out["submitit_local"]
    assert "Launching 2 jobs locally" in out["basic"]  # Hydra's basic launcher, one job after the other

    expected = campaign_files(tmp_path / "basic", CAMPAIGNS[0]), campaign_files(tmp_path / "basic", CAMPAIGNS[1])
    assert len(expected[0]) == 4 and expected[0]["round_2/metrics.json"]["n_labeled"] == 16
    for name, folder in (("basic", "basic"), ("ray", "ray"), ("submitit_local", "submitit")):
        outputs = tmp_path / folder
        sweep = sweep_dir(outputs)
        for campaign, files in zip(CAMPAIGNS, expected):
            assert campaign_files(outputs, campaign) == files, f"{name}: {campaign} differs from the basic launcher's"
            assert logged_threads(sweep, campaign) == ["1"], f"{name}: {campaign}"
        # the sweep report ran in the launching process, after every job
        rows = report_rows(sweep)
        assert set(rows) == {"random", "active"}, name
        assert all(int(r["seeds"]) == 1 for r in rows.values())
        assert (sweep / "report" / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
        assert f"report: {sweep}/report" in results[name].stdout
    assert len(list((tmp_path / "submitit" / "multirun").glob("*/.submitit/*/*_0_log.out"))) == 2  # one per job


@pytest.fixture
def mlflow_server(tmp_path) -> Iterator[str]:
    """A real `mlflow server` (sqlite on local disk, artifacts proxied to a local folder) on a free port."""
    root = tmp_path / "server"
    root.mkdir()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with running_mlflow_server(root, str(root / "artifacts"), env) as url:
        yield url


def test_four_campaigns_through_ray_into_one_mlflow_server_lose_nothing(tmp_path, shared_data, mlflow_server):
    """Two jobs at a time (Ray's 2 CPUs, 1 a job) write into one server: two strategies x two seeds."""
    strategies = ("random", "typiclust")
    sweep_args = ("-m", f"selection={','.join(strategies)}", "seed=0,1", "round=2", f"tracking.uri={mlflow_server}")
    outputs = tmp_path / "out"
    with nothing_left_behind() as env, local_ray() as ray:
        proc = run_bpsrun(*sweep_args, *ray, outputs=outputs, data=shared_data, env=env)
    assert "Ray Launcher is launching 4 jobs" in proc.stdout + proc.stderr
    campaigns = {f"synthetic-{s}-s{seed}" for s in strategies for seed in (0, 1)}
    sweep = sweep_dir(outputs)
    assert {p.parent.parent.name for p in sweep.glob("*/.hydra/config.yaml")} == campaigns
    assert all(logged_threads(sweep, c) == ["1"] for c in campaigns)
    assert set(report_rows(sweep)) == set(strategies)

    exp = api(mlflow_server, "GET", "experiments/get-by-name", params={"experiment_name": "bpsrun-synthetic"})
    exp_id = exp["experiment"]["experiment_id"]
    runs = search_runs(mlflow_server, exp_id)
    assert len(search_runs(mlflow_server, exp_id, view="ALL")) == len(runs)  # none replaced or deleted
    tags = {r["info"]["run_id"]: pairs(r["data"].get("tags")) for r in runs}
    kinds = Counter(t.get("bpsrun.kind") for t in tags.values())
    assert kinds == {"campaign": 4, "round": 8, "sweep": 1}, kinds
    parents = {t["bpsrun.campaign"]: run_id for run_id, t in tags.items() if t["bpsrun.kind"] == "campaign"}
    assert set(parents) == campaigns
    rounds: dict[str, list[str]] = {c: [] for c in campaigns}
    for run in runs:
        run_id, tag = run["info"]["run_id"], tags[run["info"]["run_id"]]
        assert run["info"]["status"] == "FINISHED", (tag, run["info"])
        if tag["bpsrun.kind"] == "round":
            assert tag["mlflow.parentRunId"] == parents[tag["bpsrun.campaign"]]
            rounds[tag["bpsrun.campaign"]].append(tag["bpsrun.round"])
            metrics = {m["key"]: m["value"] for m in run["data"].get("metrics", [])}
            assert {"val/accuracy", "train/loss", "val/loss"} <= set(metrics), (tag, sorted(metrics))
            assert history(mlflow_server, run_id, "val/accuracy"), tag
    assert all(sorted(r) == ["1", "2"] for r in rounds.values()), rounds  # one round run per campaign round
    # each campaign's learning curve: one point per round, stepped by labels, the accuracy of its metrics.json
    for campaign, run_id in parents.items():
        curve = sorted((int(p["step"]), p["value"]) for p in history(mlflow_server, run_id, "val/accuracy"))
        files = [json.loads((outputs / campaign / f"round_{r}" / "metrics.json").read_text()) for r in (1, 2)]
        assert curve == [(m["n_labeled"], pytest.approx(m["val_accuracy"], abs=1e-6)) for m in files], campaign
        assert [n for n, _ in curve] == [8, 16]
