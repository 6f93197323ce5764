"""The `stop` config group: Cohen's kappa by hand, and each rule halting a real campaign at the right round."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bpsrun.data.manifest import read_manifest
from bpsrun.data.pool import Pool
from bpsrun.errors import BpsrunError
from bpsrun.layout import Layout
from bpsrun.stopping import CampaignProgress, LabelBudget, StablePredictions, cohen_kappa
from tests.conftest import compose_config, run_in_process


def test_cohen_kappa_by_hand():
    # p_o = 3/4; marginals (1/2, 1/2) and (1/4, 3/4): p_e = 1/8 + 3/8 = 1/2; kappa = (3/4 - 1/2) / (1/2) = 1/2
    assert cohen_kappa(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2) == pytest.approx(0.5)
    assert cohen_kappa(np.array([0, 1, 2]), np.array([0, 1, 2]), 3) == pytest.approx(1.0)
    assert cohen_kappa(np.array([1, 1]), np.array([1, 1]), 2) == 1.0  # one same constant: no disagreement
    # opposite labels on a balanced set: p_o = 0, p_e = 1/2 -> -1
    assert cohen_kappa(np.array([0, 1]), np.array([1, 0]), 2) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    "rule", [lambda: LabelBudget(0), lambda: StablePredictions(threshold=1.5), lambda: StablePredictions(window=0)]
)
def test_bad_settings_are_refused(rule):
    with pytest.raises(BpsrunError, match="stop\\."):
        rule()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, list[float], list[float]]:
    """A 4-round campaign without a stopping rule: its accuracies and consecutive-round kappas (entry r - 2 is
    rounds r-1 vs r) decide where each rule must halt an identical campaign (same seed and data: training is
    deterministic)."""
    out = tmp_path_factory.mktemp("stop")
    run_in_process("round=4", "campaign=ref", outputs=out)
    cfg = compose_config("campaign=ref", outputs=out)
    layout = Layout(out / "ref")
    pool = Pool(read_manifest(layout.manifest))
    progress = CampaignProgress(layout, cfg.task.name, list(cfg.task.classes), pool.files(pool.train))
    acc = [progress.metric(r, "val_accuracy") for r in range(1, 5)]
    kappas = [cohen_kappa(progress.predicted(r - 1), progress.predicted(r), 2) for r in range(2, 5)]
    return out, acc, kappas


def rounds_run(root: Path) -> list[int]:
    return sorted(int(p.name.split("_")[1]) for p in root.glob("round_*") if (p / "metrics.json").exists())


def test_budget_halts_at_the_round_reaching_it_and_reruns_stay_there(tmp_path):
    printed = run_in_process("round=4", "stop=budget", "stop.max_labels=16", outputs=tmp_path)  # 8 per round
    root = next(p for p in tmp_path.iterdir() if (p / "manifest.csv").exists())
    assert rounds_run(root) == [1, 2]
    assert "stopping after round 2 (stop=budget): 16 labels reach the budget stop.max_labels=16" in printed
    again = run_in_process("round=5", "stop=budget", "stop.max_labels=16", outputs=tmp_path)
    assert rounds_run(root) == [1, 2] and "stopping after round 2" in again


def test_accuracy_halts_at_the_first_round_reaching_the_target(reference, tmp_path):
    out, acc, _ = reference
    target = max(acc[1:])  # reached in round 2 or later; the rule must stop at the first round reaching it
    expected = next(r for r, a in enumerate(acc, start=1) if a >= target)
    printed = run_in_process("round=4", "campaign=acc", "stop=accuracy", f"stop.target={target}", outputs=out)
    assert rounds_run(out / "acc") == list(range(1, expected + 1))
    assert f"stopping after round {expected} (stop=accuracy): val_accuracy {acc[expected - 1]:.3f}" in printed


def test_stable_halts_when_consecutive_predictions_agree(reference, tmp_path):
    out, _, kappas = reference
    threshold = max(kappas)
    expected = next(r for r, k in enumerate(kappas, start=2) if k >= threshold)
    printed = run_in_process(
        "round=4", "campaign=stable", "stop=stable", "stop.window=1", f"stop.threshold={threshold}", outputs=out
    )
    assert rounds_run(out / "stable") == list(range(1, expected + 1))
    assert f"stopping after round {expected} (stop=stable): pool predictions are stable" in printed


def test_without_a_rule_every_round_runs(reference):
    out, acc, _ = reference
    assert rounds_run(out / "ref") == [1, 2, 3, 4] and len(acc) == 4
