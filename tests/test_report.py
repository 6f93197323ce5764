"""Sweep reports: learning-curve arithmetic on hand-made curves, and the report of a real multirun."""

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from bpsrun.report.curves import Curve, aulc, campaign_metrics, labels_to_reach, summarize
from tests.conftest import REPO, run_bpsrun

N = np.array([10, 20, 40])


def test_aulc_is_the_trapezoid_area_over_the_label_range():
    assert aulc(N, np.array([0.5, 0.7, 0.9])) == pytest.approx((0.6 * 10 + 0.8 * 20) / 30)
    assert aulc(np.array([10]), np.array([0.8])) == 0.8


def test_labels_to_reach_is_the_first_budget_at_or_above_the_target():
    acc = np.array([0.5, 0.7, 0.9])
    assert labels_to_reach(N, acc, 0.7) == 20
    assert labels_to_reach(N, acc, 0.5) == 10
    assert math.isnan(labels_to_reach(N, acc, 0.95))


def test_summary_pairs_strategies_with_random_by_seed():
    curves = [
        Curve("random", 0, "r0", N, np.array([0.5, 0.7, 0.9]), 1.0),
        Curve("random", 1, "r1", N, np.array([0.6, 0.6, 0.8]), 0.9),
        Curve("active", 0, "a0", N, np.array([0.6, 0.8, 0.9]), 1.0),
        Curve("active", 1, "a1", N, np.array([0.6, 0.8, 1.0]), 0.9),
    ]
    random, active = summarize(curves, fraction=0.95)
    assert random.strategy == "random" and random.vs_random is None
    assert random.aulc == pytest.approx((0.7, math.sqrt(2 * (1 / 30) ** 2)))  # 0.7333 and 0.6667
    assert random.reached_95 == 0 and math.isnan(random.labels_to_95[0])
    # active: AULC 0.8 and 0.8333; paired differences 0.0667 and 0.1667
    assert active.aulc[0] == pytest.approx(49 / 60)
    assert active.vs_random == pytest.approx((7 / 60, math.sqrt(2 * 0.05**2)))
    assert active.accuracy[20] == pytest.approx((0.8, 0.0))
    assert active.accuracy[40] == pytest.approx((0.95, math.sqrt(2 * 0.05**2)))
    # 95 % of full: seed 0 needs 0.95 (never), seed 1 needs 0.855 (reached at 40 labels)
    assert active.reached_95 == 1 and active.labels_to_95 == (40.0, 0.0)
    assert campaign_metrics(curves[3])["labels_to_95pct_full"] == 40
    assert campaign_metrics(curves[3])["fraction_of_full"] == pytest.approx(1.0 / 0.9)


def expected_aulc(root) -> float:
    """Recomputed from the campaign's own files, independently of the report code."""
    rounds = sorted(root.glob("round_*/metrics.json"))
    n, acc = zip(*[(m["n_labeled"], m["val_accuracy"]) for m in (json.loads(p.read_text()) for p in rounds)])
    return float(np.trapezoid(acc, n) / (n[-1] - n[0]))


@pytest.mark.slow
def test_multirun_ends_with_a_report_logged_to_mlflow(tmp_path, shared_data):
    """compare_strategies shrunk to 2 strategies x 2 seeds, two rounds, through the joblib launcher (2 workers)."""
    overrides = ("-m", "experiment=compare_strategies", "selection=random,diversity", "seed=0,1", "round=2")
    proc = run_bpsrun(*overrides, "selection.n_samples=8", "trainer.max_epochs=2", outputs=tmp_path, data=shared_data)
    assert "Joblib" in proc.stdout + proc.stderr  # the experiment's launcher, not the basic one
    (sweep,) = (tmp_path / "multirun" / "compare_strategies").iterdir()
    report = sweep / "report"
    assert (report / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = {r["strategy"]: r for r in csv.DictReader((report / "summary.csv").open())}
    assert set(rows) == {"random", "diversity"}
    for name, row in rows.items():
        aulcs = [expected_aulc(tmp_path / f"cmp-synthetic-{name}-s{s}") for s in (0, 1)]
        assert float(row["aulc_mean"]) == pytest.approx(np.mean(aulcs))
        assert float(row["aulc_sd"]) == pytest.approx(np.std(aulcs, ddof=1))
        assert int(row["seeds"]) == 2
    # full supervision: one reference per seed, shared by both strategies, trained on the whole pool
    refs = sorted(p.name for p in (tmp_path / "reference").iterdir() if p.is_dir())
    assert len(refs) == 2 and refs[0].startswith("synthetic-small_cnn-s0-")
    full = [json.loads((tmp_path / "reference" / r / "metrics.json").read_text()) for r in refs]
    manifest = (tmp_path / "cmp-synthetic-random-s0" / "manifest.csv").read_text()
    assert full[0]["n_labeled"] == manifest.count(",train,")
    assert float(rows["random"]["full_supervision_mean"]) == pytest.approx(np.mean([m["val_accuracy"] for m in full]))
    assert "best strategy by mean AULC" in proc.stdout and "full supervision" in proc.stdout

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (exp,) = [e.experiment_id for e in client.search_experiments() if e.name == "bpsrun-synthetic"]
    (sweep_run,) = client.search_runs([exp], "tags.`bpsrun.kind` = 'sweep'")
    artifacts = {a.path for a in client.list_artifacts(sweep_run.info.run_id)}
    assert {"learning_curves.png", "summary.csv", "curves.csv", "report.md"} <= artifacts
    assert sweep_run.data.metrics["aulc/diversity"] == pytest.approx(float(rows["diversity"]["aulc_mean"]))
    assert len(client.search_runs([exp], "tags.`bpsrun.kind` = 'reference'")) == 2
    parent = client.search_runs(
        [exp], "tags.`bpsrun.campaign` = 'cmp-synthetic-random-s1' and tags.`bpsrun.kind` = 'campaign'"
    )[0]
    assert parent.data.metrics["aulc"] == pytest.approx(expected_aulc(tmp_path / "cmp-synthetic-random-s1"))
    assert parent.data.tags["bpsrun.sweep"] == str(sweep.resolve())

    # on demand, from another folder: the same table, and the sweep's MLflow run replaced, not duplicated
    again = subprocess.run(
        [sys.executable, "-m", "bpsrun.report", str(sweep)], cwd=tmp_path, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert (report / "report.md").read_text().strip("`\n") in again.stdout
    assert len(client.search_runs([exp], "tags.`bpsrun.kind` = 'sweep'")) == 1


@pytest.mark.slow
def test_report_of_a_folder_that_is_not_a_sweep_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bpsrun.report", str(tmp_path)], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert f"{tmp_path}: holds no Hydra jobs" in proc.stderr
