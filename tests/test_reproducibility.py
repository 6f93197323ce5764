"""The README's reproducibility promise: the same seed, `trainer.threads` and `trainer.cpu_kernels` give the same
campaign; another thread count keeps the picks that do not depend on a model and the labels, changes the floats,
and says so (runtime.json, MLflow's `runtime.*` params, one warning line when a campaign resumes with it)."""

import json
import os
from pathlib import Path

import mlflow
import pytest

from bpsrun.checks import check_config
from bpsrun.errors import BpsrunError
from bpsrun.numerics import KERNELS, differences, pin_cpu_kernels, runtime
from tests.conftest import compose_config, run_bpsrun

CAMPAIGN = "synthetic-random-s0"


def test_the_default_is_one_thread_and_avx2_kernels(tmp_path):
    cfg = compose_config(outputs=tmp_path)
    assert cfg.trainer.threads == 1 and cfg.trainer.cpu_kernels == "avx2"


def test_pinning_sets_each_library_variable(monkeypatch):
    for name in KERNELS["avx2"]:
        monkeypatch.delenv(name, raising=False)
    pin_cpu_kernels("avx2")
    assert {k: os.environ[k] for k in KERNELS["avx2"]} == {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_CBWR": "AVX2",
    }


def test_an_unknown_kernel_choice_is_refused_in_one_line(tmp_path):
    cfg = compose_config("trainer.cpu_kernels=avx9", outputs=tmp_path)
    with pytest.raises(BpsrunError, match=r"trainer.cpu_kernels='avx9': use one of avx2, native"):
        check_config(cfg)


def test_runtime_differences_name_what_changed():
    before = runtime("avx2")
    assert differences(before, dict(before)) == []
    assert differences(before, {**before, "threads": 7, "numpy_blas": "other"}) == [
        f"threads: {before['threads']} -> 7"  # numpy's BLAS is recorded, not compared
    ]


def round_files(outputs: Path, name: str) -> dict[int, bytes]:
    return {r: (outputs / CAMPAIGN / f"round_{r}" / name).read_bytes() for r in (1, 2)}


def mlflow_runtime_threads(outputs: Path) -> list[str]:
    """`runtime.threads` of the campaign's parent run and round runs."""
    client = mlflow.MlflowClient(f"sqlite:///{outputs}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("bpsrun-synthetic").experiment_id])
    return sorted(r.data.params["runtime.threads"] for r in runs)


@pytest.mark.slow
def test_one_and_two_threads_pick_and_label_alike_and_say_what_differs(tmp_path):
    """Random picks and the oracle's labels do not depend on the floats; everything a model computes may. Each
    campaign has its own data folder: a shared embedding cache would hide SimCLR's part of the difference."""
    args = ("selection=random", "round=2")
    for t in (1, 2):
        run_bpsrun(*args, f"trainer.threads={t}", outputs=tmp_path / f"t{t}")
    one, two = tmp_path / "t1", tmp_path / "t2"
    assert round_files(one, "selected.txt") == round_files(two, "selected.txt")
    assert round_files(one, "labels.json") == round_files(two, "labels.json")
    for outputs, threads in ((one, 1), (two, 2)):
        for r in (1, 2):
            recorded = json.loads((outputs / CAMPAIGN / f"round_{r}" / "runtime.json").read_text())
            assert recorded["threads"] == threads and recorded["cpu_kernels"] == "avx2"
        assert mlflow_runtime_threads(outputs) == [str(threads)] * 3  # the campaign run and two round runs
    # what the floats did, reported rather than assumed (README "Reproducibility" quotes the measured figures)
    same = {r: json.loads(a) == json.loads(b) for r, (a, b) in enumerate(
        zip(round_files(one, "metrics.json").values(), round_files(two, "metrics.json").values()), 1)}  # fmt: skip
    print(f"metrics.json identical at 1 and 2 threads, by round: {same}")

    resumed = run_bpsrun(*args, "round=3", "trainer.threads=2", outputs=one)
    warnings = [line for line in (resumed.stdout + resumed.stderr).splitlines() if "other numerics" in line]
    assert len(warnings) == 1 and "round 2 was trained with" in warnings[0] and "threads: 1 -> 2" in warnings[0]
    third = json.loads((one / CAMPAIGN / "round_3" / "runtime.json").read_text())
    assert third["threads"] == 2
