"""The embedding-quality gate: k-NN agreement by hand, and a campaign printing and logging it."""

from __future__ import annotations

import logging

import mlflow
import numpy as np
import pytest

from bpsrun.embed.quality import check_embedding, knn_agreement, majority_rate
from tests.conftest import run_in_process

# two tight pairs on opposite sides (centred already): each point's nearest other point is its pair
X = np.array([[1.0, 0.1], [1.0, -0.1], [-1.0, 0.1], [-1.0, -0.1]])


def test_knn_agreement_by_hand():
    assert knn_agreement(X, np.array(["a", "a", "b", "b"]), k=1) == 1.0
    assert knn_agreement(X, np.array(["a", "b", "a", "b"]), k=1) == 0.0
    # k=3: every point's three others are one of its class and two of the other: the vote goes wrong everywhere
    assert knn_agreement(X, np.array(["a", "a", "b", "b"]), k=3) == 0.0
    # k=2: one vote each way; the nearest neighbour (the pair) breaks the tie
    assert knn_agreement(X, np.array(["a", "a", "b", "b"]), k=2) == 1.0


def test_majority_rate_and_verdicts():
    assert majority_rate(np.array(["a", "a", "b"])) == pytest.approx(2 / 3)
    y = np.array(["a", "a", "b", "b"])
    crossed = X[[0, 2, 1, 3]]  # samples 0 and 2 (and 1 and 3) are the tight pairs: pairs across the classes
    good = check_embedding(X, crossed, y, k=1)
    assert (good.agreement, good.pixels, good.near_chance, good.loses_to_pixels) == (1.0, 0.0, False, False)
    bad = check_embedding(crossed, X, y, k=1)
    assert bad.near_chance and bad.loses_to_pixels


def test_a_campaign_prints_and_logs_the_gate(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="bpsrun"):
        run_in_process("round=2", "campaign=gate", outputs=tmp_path)  # 8 labels a round: judged from round 2
    lines = [r.getMessage() for r in caplog.records if "embedding check" in r.getMessage()]
    assert any(line.startswith("round 1: embedding check waits for 10 labels") for line in lines)
    (checked,) = [line for line in lines if line.startswith("round 2: embedding check:")]
    assert "NN label agreement" in checked and "on 16 labels vs majority class" in checked
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`bpsrun.round` = '2'", max_results=5
    )
    (run,) = runs
    agreement = run.data.metrics["embedding/knn_agreement"]
    assert 0.0 <= agreement <= 1.0 and f"agreement {agreement:.3f}" in checked
    assert run.data.metrics["embedding/majority_rate"] >= 0.5
