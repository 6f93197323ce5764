"""Lightly's classification uncertainty scores. `probs` is N x C, rows summing to 1; every score is in [0, 1]."""

from __future__ import annotations

import numpy as np


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """(1 - max p) / (1 - 1/C)."""
    c = probs.shape[1]
    return (1.0 - probs.max(axis=1)) / (1.0 - 1.0 / c)


def margin(probs: np.ndarray) -> np.ndarray:
    """1 - (p_max - p_second)."""
    top2 = np.partition(probs, probs.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(probs: np.ndarray) -> np.ndarray:
    """-sum p log2 p / log2 C, with 0 log 0 = 0."""
    c = probs.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log2(probs), 0.0)
    return -terms.sum(axis=1) / np.log2(c)


def bald(mc_probs: np.ndarray) -> np.ndarray:
    """BALD: mutual information between the prediction and the weights, from T Monte-Carlo dropout passes.

    `mc_probs` is T x N x C; the score is (H(mean_t p_t) - mean_t H(p_t)) / log2 C, in [0, 1].
    """
    mean_entropy = entropy(mc_probs.reshape(-1, mc_probs.shape[-1])).reshape(mc_probs.shape[:2]).mean(axis=0)
    return np.clip(entropy(mc_probs.mean(axis=0)) - mean_entropy, 0.0, 1.0)


SCORES = {
    "uncertainty_least_confidence": least_confidence,
    "uncertainty_margin": margin,
    "uncertainty_entropy": entropy,
}
