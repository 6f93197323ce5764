"""model=self_train (a teacher's confident pseudo-labels of the unlabeled pool, then a fresh student on both): the
pick per class with hand-computed positions, the rows each stage reads (never a validation row outside the
student's validation), a seed fixes its weights, and it trains on the labels alone where pseudo-labels cannot help."""

import logging

import numpy as np
import pytest
import torch

from bpsrun.data.pool import PoolStack
from bpsrun.model.self_train import confident, joined
from bpsrun.model.trainers import Trainers
from bpsrun.plugins import build
from tests.conftest import run_in_process
from tests.test_learners import SIZE, config
from tests.test_semi import TRAIN, VAL, cache, pool_of, split  # noqa: F401 (cache: a fixture)

PROBA = np.array(
    [
        [0.95, 0.05],  # 0: class 0, 0.95
        [0.20, 0.80],  # 1: class 1, under the threshold
        [0.99, 0.01],  # 2: class 0, 0.99
        [0.05, 0.95],  # 3: class 1, 0.95
        [0.60, 0.40],  # 4: class 0, under the threshold
        [0.93, 0.07],  # 5: class 0, 0.93
        [0.99, 0.01],  # 6: class 0, 0.99 (ties with 2)
    ]
)


@pytest.mark.parametrize(
    "quota, expected",
    [
        ([2, 2], [2, 6, 3]),  # class 0: 2 and 6 (0.99) before 0 (0.95); class 1: only 3 reaches 0.9
        ([1, 5], [2, 3]),  # the tie at 0.99 goes to the lower position
        ([4, 0], [0, 2, 5, 6]),  # every class-0 image at or above 0.9
        ([0, 0], []),
    ],
)
def test_confident_picks_the_most_probable_of_each_class_within_its_quota(quota, expected):
    assert confident(PROBA, np.array(quota), 0.9).tolist() == sorted(expected)


def test_joined_keeps_rows_of_one_cache_and_stacks_arrays_otherwise(cache):  # noqa: F811
    unlabeled = PoolStack(cache[0], [5, 7, 9])
    rows = joined(PoolStack(cache[0], [1, 2]), unlabeled, np.array([0, 2]))
    assert isinstance(rows, PoolStack) and rows.rows.tolist() == [1, 2, 5, 9]
    stacked = joined(np.asarray(PoolStack(cache[0], [1, 2])), unlabeled, np.array([1]))
    np.testing.assert_array_equal(stacked, np.asarray(PoolStack(cache[0], [1, 2, 7]), dtype=np.float32))


def self_trained(pool, *overrides: str):
    cfg = config("model=self_train", f"model.image_size={SIZE}", *overrides)
    return build(cfg.model, "model", {"pool": pool}, num_classes=2, trainers=Trainers(cfg.trainer))


def test_teacher_pool_and_student_read_only_their_rows_and_never_a_validation_image(cache, stack_reads):  # noqa: F811
    reads = stack_reads  # id(stack) -> the manifest rows read from it
    labeled, val = split(cache, TRAIN[:8]), split(cache, VAL)
    m = self_trained(pool_of(cache), "model.threshold=0.0")  # every image may be picked: the quotas decide
    m.fit(labeled, val, seed=0)
    rows, classes = m.pseudo
    counts = np.bincount(classes, minlength=2)  # quotas of 2 per label: 8 a class; of 30 images one class has 15
    assert counts.max() == 8 and len(rows) == counts.sum()
    assert not set(rows) & set(TRAIN[:8]) and set(rows) <= set(TRAIN)
    unlabeled = set(TRAIN) - set(TRAIN[:8])
    assert sorted(map(sorted, reads.values())) == sorted(
        map(sorted, [set(TRAIN[:8]), unlabeled, set(TRAIN[:8]) | set(rows), set(VAL)])
    )  # the teacher, its predictions of the unlabeled pool, the student, the student's validation: nothing else
    assert [s for s in reads.values() if s & set(VAL)] == [set(VAL)]


def test_the_same_seed_gives_the_same_weights(cache):  # noqa: F811
    def weights(seed: int) -> dict[str, torch.Tensor]:
        m = self_trained(pool_of(cache), "model.threshold=0.0")
        m.fit(split(cache, TRAIN[:12]), None, seed=seed)
        assert m.pseudo is not None
        return m.module.state_dict()

    a, b, c = weights(3), weights(3), weights(4)
    assert all(torch.equal(a[k], b[k]) for k in a) and any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize(
    "labeled, line",
    [
        ([i for i in TRAIN if i % 2][:12], "model=self_train: the labels hold 1 of the 2 classes"),
        (TRAIN, "model=self_train: no unlabeled training-pool image is left"),
    ],
)
def test_without_use_for_pseudo_labels_it_says_so_and_trains_once(cache, caplog, tmp_path, labeled, line):  # noqa: F811
    m = self_trained(pool_of(cache))
    with caplog.at_level(logging.INFO, logger="bpsrun"):
        history = m.fit(split(cache, labeled), split(cache, VAL), seed=0)
    assert [r for r in caplog.records if r.getMessage().startswith(line)] != []
    assert m.pseudo is None and "val/accuracy" in history[-1]
    x = PoolStack(cache[0], TRAIN)
    m.save(tmp_path / "model.pt")
    loaded = self_trained(None)
    loaded.load(tmp_path / "model.pt")
    assert np.array_equal(loaded.predict_proba(x), m.predict_proba(x))


def test_a_campaign_with_the_self_training_learner(tmp_path, shared_data, caplog):
    """The context hands the training pool to model=self_train: each round pseudo-labels part of it."""
    with caplog.at_level(logging.INFO, logger="bpsrun"):
        run_in_process("round=2", "model=self_train", "model.image_size=32", "model.threshold=0.5", "campaign=st",
                       outputs=tmp_path, data=shared_data)  # fmt: skip
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("model=self_train:")]
    assert len(lines) == 2 and all("pseudo-labels of" in line for line in lines)
    assert all((tmp_path / "st" / f"round_{r}" / "metrics.json").exists() for r in (1, 2))
