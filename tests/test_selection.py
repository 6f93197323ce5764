"""Exact picks of the selection engine on tiny hand-made inputs."""

import numpy as np
import pytest

from bpsrun.errors import BpsrunError
from bpsrun.selection.config import round_config, validate
from bpsrun.selection.engine import SelectionInputs, random_values, select
from bpsrun.selection.greedy import Diversity, greedy_select

# Unit vectors at angles 0, 10, 90, 180, 270 degrees (the 10-degree one is a near-duplicate of the first).
C10, S10 = np.cos(np.deg2rad(10)), np.sin(np.deg2rad(10))
X = np.array([[1.0, 0.0], [C10, S10], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # exact, so ties are real ties

DIVERSITY = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}


def entropy_weights(task: str = "bps-classification") -> dict:
    return {"input": {"type": "SCORES", "task": task, "score": "uncertainty_entropy"}, "strategy": {"type": "WEIGHTS"}}


def test_k_center_without_labels_starts_at_the_most_atypical_point():
    # Centroid = (cos0+cos10-1)/5, (sin10+1-1)/5) = (0.1970, 0.0347); farthest from it is 180 degrees (index 3).
    # Then: distances to 180deg: [2, 1.992, 1.414, 0, 1.414] -> index 0; then min distances
    # [0, 0.174, 1.414, 0, 1.414] -> index 2 (tie with 4, lower index wins); then index 4.
    assert greedy_select(4, np.zeros(5), [Diversity(X)]) == [3, 0, 2, 4]


def test_k_center_counts_labeled_points_as_centres():
    # With 0 and 180 degrees labeled, candidates are 10, 90, 270 degrees: 90 and 270 are equally far (1.414),
    # the near-duplicate at 10 degrees (0.174 from 0) comes last.
    candidates = X[[1, 2, 4]]
    d = Diversity(candidates, labeled=X[[0, 3]])
    assert d.dist == pytest.approx([0.17431, 1.41421, 1.41421], abs=1e-4)
    assert greedy_select(3, np.zeros(3), [d]) == [1, 2, 0]


def test_minimum_distance_stops_early():
    d = Diversity(X[[1, 2, 4]], labeled=X[[0, 3]], min_distance=0.5)
    assert greedy_select(3, np.zeros(3), [d]) == [1, 2]


def test_weights_pick_the_highest_scores_ties_by_index():
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.5, 0.5], [1.0, 0.0]])
    inputs = SelectionInputs(candidates=list("abcde"), predictions={"bps-classification": probs})
    picks = select({"n_samples": 3, "strategies": [entropy_weights()]}, inputs)
    assert picks == [1, 3, 2]


def test_weights_times_diversity():
    # Entropy favours index 1 (0.5/0.5); the product with distance to the labeled point at 0 degrees
    # then favours the far, fairly uncertain 180-degree point over the near-duplicate.
    probs = np.array([[0.99, 0.01], [0.5, 0.5], [0.9, 0.1], [0.7, 0.3]])
    inputs = SelectionInputs(
        candidates=list("abcd"),
        embeddings=X[[1, 2, 3, 4]],
        labeled_embeddings=X[[0]],
        predictions={"bps-classification": probs},
    )
    config = {"n_samples": 2, "strategies": [entropy_weights(), DIVERSITY]}
    # objective_i = H_i * d_i: a 0.081*0.174, b 1.0*1.414, c 0.469*2.0=0.938, d 0.881*1.414=1.246
    # after b (90 deg): c min(2, 1.414)*0.469=0.663, d min(1.414, 2.0)*0.881=1.246 -> d
    assert select(config, inputs) == [1, 3]


def test_random_is_a_stable_permutation_per_seed():
    names = [f"f{i}.tif" for i in range(100)]
    first = select(
        {
            "n_samples": 10,
            "strategies": [{"input": {"type": "RANDOM", "random_seed": 3}, "strategy": {"type": "WEIGHTS"}}],
        },
        SelectionInputs(candidates=names),
    )
    again = select(
        {
            "n_samples": 10,
            "strategies": [{"input": {"type": "RANDOM", "random_seed": 3}, "strategy": {"type": "WEIGHTS"}}],
        },
        SelectionInputs(candidates=names),
    )
    other = select(
        {
            "n_samples": 10,
            "strategies": [{"input": {"type": "RANDOM", "random_seed": 4}, "strategy": {"type": "WEIGHTS"}}],
        },
        SelectionInputs(candidates=names),
    )
    assert first == again != other
    # values depend on the name only: removing other files does not change the order of the rest
    values = random_values(names, 3)
    assert random_values(names[50:], 3) == pytest.approx(values[50:])


def test_budget_larger_than_pool_is_a_clear_error():
    with pytest.raises(BpsrunError, match="asks for 10 samples but only 3 unlabeled"):
        select({"n_samples": 10, "strategies": [DIVERSITY]}, SelectionInputs(candidates=list("abc"), embeddings=X[:3]))


def test_scores_without_predictions_is_a_clear_error():
    with pytest.raises(BpsrunError, match="needs predictions for task 'bps-classification'"):
        select({"n_samples": 1, "strategies": [entropy_weights()]}, SelectionInputs(candidates=list("abc")))


def test_round_config_uses_first_then_later_block_and_budget():
    preset = {
        "name": "active",
        "n_samples": 30,
        "first_round": {"strategies": [DIVERSITY]},
        "later_rounds": {"strategies": [entropy_weights()]},
    }
    assert round_config(preset, 1) == {"n_samples": 30, "strategies": [DIVERSITY]}
    assert round_config(preset, 2) == {"n_samples": 30, "strategies": [entropy_weights()]}


def test_lightly_validator_rejects_unknown_keys_by_name():
    bad = {
        "n_samples": 5,
        "strategies": [{"input": {"type": "EMBEDDINGS", "bogus": 1}, "strategy": {"type": "DIVERSITY"}}],
    }
    with pytest.raises(BpsrunError, match="bogus"):
        validate(bad, "my.yaml")
    validate({"n_samples": 5, "strategies": [DIVERSITY]}, "ok.yaml")
