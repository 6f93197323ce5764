"""Lightly's uncertainty scores on hand-computed probability tables."""

import math

import numpy as np
import pytest

from bpsrun.select.scores import entropy, least_confidence, margin

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
