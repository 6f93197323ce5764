"""Lightly's uncertainty scores on hand-computed probability tables."""

import math

import numpy as np
import pytest

from bpsrun.selection.scores import bald, entropy, least_confidence, margin

P2 = np.array([[0.5, 0.5], [0.9, 0.1], [1.0, 0.0], [0.2, 0.8]])
P3 = np.array([[1 / 3, 1 / 3, 1 / 3], [0.7, 0.2, 0.1], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])


def test_least_confidence_by_hand():
    assert least_confidence(P2) == pytest.approx([1.0, 0.2, 0.0, 0.4])
    # (1 - max) / (1 - 1/3): (2/3)/(2/3), 0.3/(2/3), 0, 0.5/(2/3)
    assert least_confidence(P3) == pytest.approx([1.0, 0.45, 0.0, 0.75])


def test_margin_by_hand():
    assert margin(P2) == pytest.approx([1.0, 0.2, 0.0, 0.4])
    assert margin(P3) == pytest.approx([1.0, 0.5, 0.0, 1.0])


def test_entropy_by_hand():
    h = -(0.9 * math.log2(0.9) + 0.1 * math.log2(0.1))  # 0.4689955935892812
    assert entropy(P2) == pytest.approx([1.0, h, 0.0, -(0.2 * math.log2(0.2) + 0.8 * math.log2(0.8))])
    h3 = -(0.7 * math.log2(0.7) + 0.2 * math.log2(0.2) + 0.1 * math.log2(0.1)) / math.log2(3)
    assert entropy(P3) == pytest.approx([1.0, h3, 0.0, 1 / math.log2(3)])
    assert h3 == pytest.approx(0.7298466, abs=1e-6)


def test_two_classes_rank_alike():
    rng = np.random.default_rng(0)
    p = rng.random(50)
    probs = np.stack([p, 1 - p], axis=1)
    order = np.argsort(-entropy(probs), kind="stable")
    assert (np.argsort(-least_confidence(probs), kind="stable") == order).all()
    assert (np.argsort(-margin(probs), kind="stable") == order).all()


def test_bald_by_hand():
    # Sample 0: both passes agree on 0.5/0.5 -> no disagreement, BALD 0 (though entropy is maximal).
    # Sample 1: passes say 1/0 and 0/1 -> mean 0.5/0.5, H(mean) = 1, mean H = 0 -> BALD 1.
    # Sample 2: passes 0.9/0.1 and 0.5/0.5 -> mean 0.7/0.3: H(0.7) - (H(0.9) + H(0.5)) / 2.
    mc = np.array([[[0.5, 0.5], [1.0, 0.0], [0.9, 0.1]], [[0.5, 0.5], [0.0, 1.0], [0.5, 0.5]]])

    def h(p):
        return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))

    assert bald(mc) == pytest.approx([0.0, 1.0, h(0.7) - (h(0.9) + 1.0) / 2])
