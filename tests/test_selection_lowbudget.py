"""Low-budget strategies: TYPICALITY's fast kNN, TypiClust, ProbCover, their validation, and uncertainty with three
classes. Exact picks on small hand-made inputs (points on the unit circle, distances as chords)."""

import math

import numpy as np
import pytest

import bpsrun.selection.strategies as strategies
from bpsrun.errors import BpsrunError
from bpsrun.selection.config import validate
from bpsrun.selection.engine import SelectionInputs, select
from bpsrun.selection.kmeans import kmeans
from bpsrun.selection.probcover import probcover, purity_radius
from bpsrun.selection.remote import select_with_worker
from bpsrun.selection.scores import entropy, least_confidence, margin
from bpsrun.selection.strategies import nearest_sims, probed_sims, typicality
from bpsrun.selection.typiclust import pool_of, typiclust

TASK = "bps-classification"


def on_circle(degrees):
    a = np.deg2rad(degrees)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def chord(degrees):
    return 2 * math.sin(math.radians(degrees) / 2)


def one(strategy, source=None):
    return {"n_samples": 2, "strategies": [{"input": source or {"type": "EMBEDDINGS"}, "strategy": strategy}]}


def clustered(n, dim, centres, noise, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(centres, dim))[rng.integers(0, centres, n)] + noise * rng.normal(size=(n, dim))).astype(
        np.float32
    )


# --- TYPICALITY: exact up to EXACT_UP_TO samples, an inverted-file search above


def test_probing_every_cell_is_the_exact_knn():
    x = pool_of(clustered(300, 16, 6, 0.5), None)
    centres, _ = kmeans(x, 7)
    exact = np.sort(nearest_sims(x, np.arange(len(x)), 5), axis=1)
    assert np.sort(probed_sims(x, 5, centres, probes=7), axis=1) == pytest.approx(exact, abs=1e-6)
    # one probe into cells smaller than k + 1: every row falls back to the exact search
    small, labels = kmeans(x, 30)
    k = int(np.bincount(labels).max())
    exact = np.sort(nearest_sims(x, np.arange(len(x)), k), axis=1)
    assert np.sort(probed_sims(x, k, small, probes=1), axis=1) == pytest.approx(exact, abs=1e-6)


def test_fast_typicality_with_all_probes_equals_the_exact_one(monkeypatch):
    x = clustered(400, 16, 8, 0.5)
    exact = typicality(x, 20)
    monkeypatch.setattr(strategies, "EXACT_UP_TO", 0)
    monkeypatch.setattr(strategies, "PROBES", 10**6)
    assert typicality(x, 20) == pytest.approx(exact, rel=1e-5)


def test_fast_typicality_is_accurate_on_a_clustered_pool(monkeypatch):
    x = clustered(4000, 32, 10, 1.0)  # overlapping clusters: 63 cells, 8 probed
    exact = typicality(x, 20)
    monkeypatch.setattr(strategies, "EXACT_UP_TO", 0)
    fast = typicality(x, 20)
    assert (fast <= exact * (1 + 1e-5)).all()  # missed neighbours only lengthen the mean distance
    assert ((exact - fast) / exact).max() < 0.05
    ranks = [np.argsort(np.argsort(v)) for v in (exact, fast)]
    assert np.corrcoef(*ranks)[0, 1] > 0.999
    assert len(set(np.argsort(-exact)[:100]) & set(np.argsort(-fast)[:100])) >= 95


# --- TYPICLUST

# cluster A (indices 0-4), B (5-10), C (11-13, smaller than min_cluster_size 5)
A, B, C = [0, 3, 4, 6, 10], [118, 120, 121, 124, 126, 133], [240, 241, 243]
X = on_circle(A + B + C)
# typicality with k = 2 is 1 / mean of the two nearest angles' chords, so the order follows the mean gap:
# A: 0: (3, 4), 3: (1, 3), 4: (1, 2), 6: (2, 3), 10: (4, 6)  -> 4 (index 2), 3, 6, 0, 10
# B: 118: (2, 3), 120: (1, 2), 121: (1, 3), 124: (2, 3), 126: (2, 5), 133: (7, 9)  -> 120 (index 6), 121 (7)
# C: 240: (1, 3), 241: (1, 2), 243: (2, 3)  -> 241 (index 12), 240, 243


def test_typiclust_takes_the_largest_least_labeled_cluster_skipping_small_ones():
    assert kmeans(pool_of(X, None), 3)[1].tolist() == [1] * 5 + [2] * 6 + [0] * 3  # the three groups
    # 3 clusters: B (largest), then A (no label yet), then B again: C has no label but only 3 samples
    assert typiclust(X, None, 3, num_nearest_neighbors=2) == [6, 2, 7]
    assert typiclust(X, None, 3, num_nearest_neighbors=2, min_cluster_size=1) == [6, 2, 12]
    # max_clusters 3 for a budget of 14: B and A alternate (A in typicality order) until both are used up; C last
    picks = typiclust(X, None, 14, num_nearest_neighbors=2, max_clusters=3)
    assert picks[1:10:2] == [2, 1, 3, 0, 4] and set(picks[0:11:2]) == set(range(5, 11))
    assert picks[11:] == [12, 11, 13]


def test_typiclust_counts_labeled_samples_and_their_density():
    # a labeled sample at 122 degrees joins B: A (no label) goes first; then A and B have one each, B is larger,
    # and with 122 in it, 121's two nearest are 1 degree away each: 121 (index 7) is B's most typical now
    config = one({"type": "TYPICLUST", "num_nearest_neighbors": 2})
    validate(config, "typiclust.yaml")
    inputs = SelectionInputs(
        candidates=[f"s{i}" for i in range(len(X))], embeddings=X, labeled_embeddings=on_circle([122])
    )
    assert select(config, inputs) == [2, 7]


# --- PROBCOVER


def test_probcover_greedy_coverage_then_farthest_first():
    # balls of radius chord(13 deg) (strictly closer): 0:{0,10} 10:{0,10,20} 20:{10,20,32} 32:{20,32}
    # 100:{100,106} 106:{100,106} 200:{200}
    x = on_circle([0, 10, 20, 32, 100, 106, 200])
    # 10 (3 uncovered; ties with 20: lower index), 100 (2), 20 (covers 32), 200; then all is covered and the
    # rest go farthest-first from the picks: 32 (12 deg from 20), 0 (10 deg), 106 (6 deg)
    assert probcover(x, None, 7, num_classes=2, radius=chord(13)) == [1, 4, 2, 6, 3, 0, 5]
    # a labeled sample at 203 deg covers 200 from the start, and is the nearest centre of 200 (3 deg) afterwards
    assert probcover(x, on_circle([203]), 5, num_classes=2, radius=chord(13)) == [1, 4, 2, 3, 0]


# two blobs; 38 and 51 degrees sit between them. k-means (k=2) splits at about 45 degrees, so r(p), the distance
# to the nearest point of the other blob, is 51 - a for a in the first blob and b - 38 for b in the second:
# r = 61 55 51 48 42 13 | 13 41 48 52 56 63 (degrees). A ball B(p, delta) is pure while delta <= r(p).
BLOBS = [-10, -4, 0, 3, 9, 38, 51, 79, 86, 90, 94, 101]


@pytest.mark.parametrize("purity, degrees", [(0.95, 13), (0.8, 41), (0.75, 42), (0.5, 51)])
def test_probcover_radius_is_the_largest_with_enough_pure_balls(purity, degrees):
    # 12 points: 0.95 needs all 12 pure (the smallest r), 0.8 needs 10 (the 10th largest r: 41), 0.75 needs 9
    # (42), 0.5 needs 6 (51)
    x = pool_of(on_circle(BLOBS), None, np.float64)
    labels = kmeans(x, 2)[1]
    assert labels.tolist() == [labels[0]] * 6 + [1 - labels[0]] * 6
    assert purity_radius(x, labels, purity) == pytest.approx(chord(degrees), rel=1e-9)


def test_probcover_radius_rule_through_the_engine():
    # purity 0.8: delta = chord(41 deg). 0 deg's ball holds the first blob and 38 (6 points, the lowest index of
    # those with 6); then 79's ball covers the rest of the second blob; then farthest-first: 38 (38 deg from 0)
    config = one({"type": "PROBCOVER", "radius": None, "purity": 0.8})
    config["n_samples"] = 3
    validate(config, "probcover.yaml")
    inputs = SelectionInputs(
        candidates=[f"s{i}" for i in range(len(BLOBS))], embeddings=on_circle(BLOBS), categories={TASK: ["a", "b"]}
    )
    assert select(config, inputs) == [2, 7, 5]
    inputs.categories = {}
    with pytest.raises(BpsrunError, match="PROBCOVER needs strategy.num_classes"):
        select(config, inputs)
    config["strategies"][0]["strategy"]["num_classes"] = 2
    assert select(config, inputs) == [2, 7, 5]


# --- validation of the extension types


def test_extension_entries_are_checked_by_our_rules():
    validate(one({"type": "TYPICLUST", "num_nearest_neighbors": 20, "max_clusters": 500, "min_cluster_size": 5}), "t")
    validate(one({"type": "PROBCOVER", "radius": 0.3, "purity": 0.9, "num_classes": 3}), "p")
    cases = [
        (
            one({"type": "TYPICLUST", "k": 3}),
            "t.yaml: strategies\\[0\\]: TYPICLUST has no option 'k'; allowed keys: "
            "\\['type', 'num_nearest_neighbors', 'max_clusters', 'min_cluster_size'\\]",
        ),
        (one({"type": "TYPICLUST", "max_clusters": 2.5}), "TYPICLUST max_clusters must be an integer >= 1, got 2.5"),
        (one({"type": "PROBCOVER", "purity": 1.5}), "PROBCOVER purity must be a number in \\(0, 1\\], got 1.5"),
        (one({"type": "PROBCOVER", "radius": 0}), "PROBCOVER radius must be a number > 0 or null, got 0"),
        (one({"type": "PROBCOVER", "num_classes": 1}), "num_classes must be an integer >= 2 or null, got 1"),
        (
            one({"type": "PROBCOVER"}, {"type": "EMBEDDINGS", "tag_name": "round_1"}),
            "PROBCOVER takes only input: \\{type: EMBEDDINGS\\}",
        ),
        (one({"type": "TYPICLUST"}, {"type": "SCORES", "task": TASK, "score": "uncertainty_margin"}), "takes only"),
    ]
    for config, message in cases:
        with pytest.raises(BpsrunError, match=message):
            validate(config, "t.yaml")


def test_extensions_pick_the_whole_round_alone():
    config = one({"type": "TYPICLUST"})
    config["strategies"].append({"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}})
    message = "strategies\\[0\\]: TYPICLUST picks the whole round itself and does not combine with other strategies"
    with pytest.raises(BpsrunError, match=f"t.yaml: {message}"):
        validate(config, "t.yaml")
    with pytest.raises(BpsrunError, match=message):
        select(config, SelectionInputs(candidates=list("abc"), embeddings=X[:3]))


def test_the_rest_of_an_extension_config_still_meets_lightlys_validator():
    config = one({"type": "PROBCOVER"})
    config["n_samples"] = -3
    with pytest.raises(BpsrunError, match="p.yaml: invalid Lightly selection config \\(n_samples"):
        validate(config, "p.yaml")
    config = {**one({"type": "PROBCOVER"}), "bogus": 1}
    with pytest.raises(BpsrunError, match="invalid Lightly selection config \\(bogus"):
        validate(config, "p.yaml")
    with pytest.raises(
        BpsrunError, match="strategies\\[0\\].strategy.type='TYPICLUS' is unknown; use one of .*'TYPICLUST'"
    ):
        validate(one({"type": "TYPICLUS"}), "p.yaml")


def test_the_lightly_worker_refuses_extensions_in_one_line(monkeypatch):
    monkeypatch.delenv("LIGHTLY_TOKEN", raising=False)
    with pytest.raises(BpsrunError) as err:
        select_with_worker(one({"type": "TYPICLUST"}), "0" * 24)
    assert str(err.value) == (
        "strategy type TYPICLUST is a bpsrun extension the Lightly Worker does not run; use selection/backend=local"
    )


# --- uncertainty with three classes

P3 = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3], [0.6, 0.2, 0.2], [0.46, 0.44, 0.10]])


def test_three_class_scores_by_hand_and_their_rankings():
    # least confidence (1 - max) / (2/3): 0.75, 0.9, 0.6, 0.81
    assert least_confidence(P3) == pytest.approx([0.75, 0.9, 0.6, 0.81])
    # margin 1 - (top - second): 1.0, 0.9, 0.6, 0.98
    assert margin(P3) == pytest.approx([1.0, 0.9, 0.6, 0.98])
    # entropy: -sum p log2 p / log2 3 = 0.63093, 0.99116, 0.86497, 0.86354
    bits = [1.0, -(0.4 * math.log2(0.4) + 0.6 * math.log2(0.3)), -(0.6 * math.log2(0.6) + 0.4 * math.log2(0.2))]
    bits.append(-(0.46 * math.log2(0.46) + 0.44 * math.log2(0.44) + 0.1 * math.log2(0.1)))
    assert entropy(P3) == pytest.approx([b / math.log2(3) for b in bits])
    inputs = SelectionInputs(candidates=list("abcd"), predictions={TASK: P3})
    for score, order in (
        ("uncertainty_margin", [0, 3, 1, 2]),
        ("uncertainty_least_confidence", [1, 3, 0, 2]),
        ("uncertainty_entropy", [1, 2, 3, 0]),
    ):
        config = {
            "n_samples": 4,
            "strategies": [
                {"input": {"type": "SCORES", "task": TASK, "score": score}, "strategy": {"type": "WEIGHTS"}}
            ],
        }
        validate(config, "x.yaml")
        assert select(config, inputs) == order, score
