"""THRESHOLD, BALANCE, TYPICALITY and SIMILARITY: exact picks on tiny hand-made inputs."""

import numpy as np
import pytest

from bpsrun.errors import BpsrunError
from bpsrun.selection.config import validate
from bpsrun.selection.engine import SelectionInputs, select
from bpsrun.selection.strategies import balance_targets, typicality

TASK = "bps-classification"


def on_circle(degrees):
    a = np.deg2rad(degrees)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def entry(input_, strategy):
    return {"input": input_, "strategy": strategy}


def test_threshold_filters_before_weights():
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.5, 0.5]])
    inputs = SelectionInputs(
        candidates=list("abcd"),
        predictions={TASK: probs},
        metadata={"dose_Gy": np.array(["1.0", "0.1", "1.0", "0.0"])},
    )
    config = {
        "n_samples": 3,
        "strategies": [
            entry(
                {"type": "METADATA", "key": "dose_Gy"},
                {"type": "THRESHOLD", "threshold": 0.5, "operation": "BIGGER_EQUAL"},
            ),
            entry({"type": "SCORES", "task": TASK, "score": "uncertainty_entropy"}, {"type": "WEIGHTS"}),
        ],
    }
    # only a and c pass the filter; c is the more uncertain; the budget of 3 cannot be filled
    assert select(config, inputs) == [2, 0]


def test_balance_target_remainder_goes_to_other_values():
    values = np.array(["Fe", "Fe", "Fe", "X-ray", "X-ray", "gamma"])
    assert balance_targets(values, {"Fe": 0.5}, "TARGET") == {"Fe": 0.5, "X-ray": 0.25, "gamma": 0.25}
    inputs = SelectionInputs(candidates=list("abcdef"), metadata={"particle_type": values})
    config = {
        "n_samples": 4,
        "strategies": [entry({"type": "METADATA", "key": "particle_type"}, {"type": "BALANCE", "target": {"Fe": 0.5}})],
    }
    # target counts Fe 2, X-ray 1, gamma 1: a (deficit 2), b (Fe and X-ray tie at 1, lower index), d, f
    assert select(config, inputs) == [0, 1, 3, 5]


def test_balance_times_weights():
    inputs = SelectionInputs(
        candidates=list("abcd"),
        metadata={
            "particle_type": np.array(["Fe", "Fe", "X-ray", "X-ray"]),
            "w": np.array(["0.7", "0.9", "0.3", "0.2"]),
        },
    )
    weights = entry({"type": "METADATA", "key": "w"}, {"type": "WEIGHTS"})
    balance = entry(
        {"type": "METADATA", "key": "particle_type"}, {"type": "BALANCE", "target": {"Fe": 0.5, "X-ray": 0.5}}
    )
    assert select({"n_samples": 2, "strategies": [weights]}, inputs) == [1, 0]
    assert select({"n_samples": 2, "strategies": [weights, balance]}, inputs) == [1, 2]


def test_balance_on_predicted_classes_uniform():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.2, 0.8]])
    inputs = SelectionInputs(
        candidates=list("abcd"), predictions={TASK: probs}, categories={TASK: ["track", "no track"]}
    )
    config = {
        "n_samples": 2,
        "strategies": [
            entry(
                {"type": "PREDICTIONS", "task": TASK, "name": "CLASS_DISTRIBUTION"},
                {"type": "BALANCE", "distribution": "UNIFORM"},
            )
        ],
    }
    assert select(config, inputs) == [0, 3]


def test_typicality_by_hand():
    x = on_circle([0, 5, 11, 90, 180])
    chord = lambda deg: 2 * np.sin(np.deg2rad(deg) / 2)  # noqa: E731
    expected = [
        1 / np.mean([chord(5), chord(11)]),
        1 / np.mean([chord(5), chord(6)]),
        1 / np.mean([chord(6), chord(11)]),
        1 / np.mean([chord(79), chord(85)]),
        1 / np.mean([chord(90), chord(169)]),
    ]
    assert typicality(x, 2) == pytest.approx(expected, rel=1e-5)
    typ = entry({"type": "EMBEDDINGS"}, {"type": "TYPICALITY", "num_nearest_neighbors": 2})
    inputs = SelectionInputs(candidates=list("abcde"), embeddings=x)
    assert select({"n_samples": 3, "strategies": [typ]}, inputs) == [1, 0, 2]
    typ["strategy"]["stopping_condition_minimum_typicality"] = 5.0
    typ_div = [typ, entry({"type": "EMBEDDINGS"}, {"type": "DIVERSITY", "strength": 0.0})]
    assert select({"n_samples": 5, "strategies": typ_div}, inputs) == [1, 0, 2]


def test_similarity_to_an_earlier_rounds_picks():
    inputs = SelectionInputs(
        candidates=list("abc"), embeddings=on_circle([10, 90, 180]), tags={"round_1": on_circle([0])}
    )
    config = {
        "n_samples": 2,
        "strategies": [entry({"type": "EMBEDDINGS", "tag_name": "round_1"}, {"type": "SIMILARITY"})],
    }
    assert select(config, inputs) == [0, 1]
    config["strategies"][0]["input"]["tag_name"] = "round_7"
    with pytest.raises(BpsrunError, match="tag_name 'round_7' has no samples; known tags: \\['round_1'\\]"):
        select(config, inputs)


def test_unknown_metadata_key_is_named():
    inputs = SelectionInputs(candidates=list("ab"), metadata={"particle_type": np.array(["Fe", "X-ray"])})
    config = {
        "n_samples": 1,
        "strategies": [entry({"type": "METADATA", "key": "particle"}, {"type": "BALANCE", "distribution": "UNIFORM"})],
    }
    with pytest.raises(
        BpsrunError, match="METADATA key 'particle' does not exist; available keys: \\['particle_type'\\]"
    ):
        select(config, inputs)


def test_validation_pairs_strategies_with_inputs():
    with pytest.raises(BpsrunError, match="DIVERSITY needs input.type in \\('EMBEDDINGS',\\), got SCORES"):
        validate(
            {
                "n_samples": 1,
                "strategies": [
                    entry({"type": "SCORES", "task": TASK, "score": "uncertainty_margin"}, {"type": "DIVERSITY"})
                ],
            },
            "x.yaml",
        )
    with pytest.raises(BpsrunError, match="BALANCE needs strategy.target"):
        validate(
            {"n_samples": 1, "strategies": [entry({"type": "METADATA", "key": "particle_type"}, {"type": "BALANCE"})]},
            "x.yaml",
        )


def test_worker_only_fields_are_refused_not_ignored():
    config = {
        "n_samples": 1,
        "strategies": [entry({"type": "EMBEDDINGS", "dataset_id": "0" * 24}, {"type": "DIVERSITY"})],
    }
    with pytest.raises(BpsrunError, match="dataset_id is valid for the Lightly Worker but not supported"):
        validate(config, "x.yaml")


def weights_on(values, **strategy):
    inputs = SelectionInputs(candidates=[f"s{i}" for i in range(len(values))], metadata={"v": np.array(values)})
    config = {
        "n_samples": len(values),
        "strategies": [entry({"type": "METADATA", "key": "v"}, {"type": "WEIGHTS", **strategy})],
    }
    validate(config, "x.yaml")
    return select(config, inputs)


def test_weights_stop_once_the_sum_reaches_max_sum():
    # highest first: 4 (sum 4), 3 (sum 7 >= 7): stop
    assert weights_on([3.0, 1.0, 2.0, 4.0], stopping_condition_max_sum=7.0) == [3, 0]
    # 7.5 is not reached by 4 + 3, so 2 is picked too
    assert weights_on([3.0, 1.0, 2.0, 4.0], stopping_condition_max_sum=7.5) == [3, 0, 2]


def test_weights_target_range_steers_the_sum_into_the_range():
    values = [3.0, 1.0, 2.0, 4.0, 0.0]
    # sum 0 < 5: highest value, 4. Sum 4 < 5: 3 would overshoot 6, so the best of 1, 2, 0 is 2 (sum 6).
    # Sum 6 is in range: only 0 keeps it there. Then only overshooting candidates remain, by index.
    assert weights_on(values, target_range={"min_sum": 5.0, "max_sum": 6.0}) == [3, 2, 4, 0, 1]
    assert weights_on(values) == [3, 0, 2, 1, 4]  # plain WEIGHTS, for contrast


PROBS = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]])  # predicted: track, no, track, no


def predictions_inputs():
    return SelectionInputs(candidates=list("abcd"), predictions={TASK: PROBS}, categories={TASK: ["track", "no track"]})


def test_category_count_threshold_keeps_predicted_tracks():
    config = {
        "n_samples": 4,
        "strategies": [
            entry(
                {"type": "PREDICTIONS", "task": TASK, "name": "CATEGORY_COUNT", "categories": ["track"]},
                {"type": "THRESHOLD", "threshold": 1, "operation": "BIGGER_EQUAL"},
            ),
            entry({"type": "SCORES", "task": TASK, "score": "uncertainty_entropy"}, {"type": "WEIGHTS"}),
        ],
    }
    validate(config, "x.yaml")
    # a and c are predicted tracks; c (0.6 / 0.4) is the more uncertain
    assert select(config, predictions_inputs()) == [2, 0]


def test_class_distribution_balance_limited_to_categories():
    config = {
        "n_samples": 3,
        "strategies": [
            entry(
                {"type": "PREDICTIONS", "task": TASK, "name": "CLASS_DISTRIBUTION", "categories": ["track"]},
                {"type": "BALANCE", "distribution": "UNIFORM"},
            )
        ],
    }
    validate(config, "x.yaml")
    # only "track" gets a share (all 3): a (deficit 3), c (deficit 2), then b by index among the zero deficits
    assert select(config, predictions_inputs()) == [0, 2, 1]


def test_unknown_category_is_named():
    config = {
        "n_samples": 1,
        "strategies": [
            entry(
                {"type": "PREDICTIONS", "task": TASK, "name": "CATEGORY_COUNT", "categories": ["tracks"]},
                {"type": "WEIGHTS"},
            )
        ],
    }
    with pytest.raises(BpsrunError, match=r"input.categories \['tracks'\] are not classes of task"):
        select(config, predictions_inputs())


def test_prediction_names_and_weights_limits_are_checked():
    with pytest.raises(
        BpsrunError, match=r"BALANCE with a PREDICTIONS input needs input.name in \['CLASS_DISTRIBUTION'\]"
    ):
        validate(
            {
                "n_samples": 1,
                "strategies": [
                    entry(
                        {"type": "PREDICTIONS", "task": TASK, "name": "CATEGORY_COUNT"},
                        {"type": "BALANCE", "distribution": "UNIFORM"},
                    )
                ],
            },
            "x.yaml",
        )
    with pytest.raises(BpsrunError, match="target_range.min_sum \\(3.0\\) is above max_sum \\(1.0\\)"):
        validate(
            {
                "n_samples": 1,
                "strategies": [
                    entry({"type": "RANDOM"}, {"type": "WEIGHTS", "target_range": {"min_sum": 3.0, "max_sum": 1.0}})
                ],
            },
            "x.yaml",
        )
