"""Is an embedding worth selecting on? Leave-one-out k-nearest-neighbour label agreement among the labeled
samples, judged against the majority-class rate (chance for a constant guess) and raw pixels under the same probe
(REFERENCE.md 6: a self-supervised embedding that loses to raw pixels is not worth selecting on). Pure numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_LABELS = 10  # fewer leave-one-out votes say nothing
NEAR_CHANCE = 0.05  # agreement within this of the majority rate counts as chance


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    x = x - x.mean(axis=0)  # centred: raw pixels share a large common offset that would swamp cosine similarity
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_agreement(x: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Share of samples whose k nearest other samples (cosine) vote for their own label; a tied vote goes to the
    tied class with the nearest neighbour."""
    labels = np.asarray(labels)
    n = len(labels)
    k = min(k, n - 1)
    u = unit(x)
    sims = u @ u.T
    np.fill_diagonal(sims, -np.inf)
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    classes, codes = np.unique(labels, return_inverse=True)
    votes = np.zeros((n, len(classes)))
    weight = 1.0 + 1e-6 * (k - np.arange(k))  # counts first; nearer neighbours break ties
    np.add.at(votes, (np.arange(n)[:, None], codes[nearest]), weight[None, :])
    return float((votes.argmax(axis=1) == codes).mean())


def majority_rate(labels: np.ndarray) -> float:
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return float(counts.max() / counts.sum())


@dataclass(frozen=True)
class EmbeddingCheck:
    n_labels: int
    k: int
    agreement: float
    majority: float
    pixels: float

    @property
    def near_chance(self) -> bool:
        return self.agreement <= self.majority + NEAR_CHANCE

    @property
    def loses_to_pixels(self) -> bool:
        return self.agreement < self.pixels

    def metrics(self) -> dict[str, float]:
        return {
            "embedding/knn_agreement": self.agreement,
            "embedding/majority_rate": self.majority,
            "embedding/pixels_knn_agreement": self.pixels,
        }

    def summary(self) -> str:
        return (
            f"{self.k}-NN label agreement {self.agreement:.3f} on {self.n_labels} labels vs majority class "
            f"{self.majority:.3f} (raw pixels {self.pixels:.3f})"
        )


def check_embedding(embedding: np.ndarray, pixels: np.ndarray, labels: np.ndarray, k: int = 5) -> EmbeddingCheck:
    """The embedding and raw pixels of the labeled samples, probed alike."""
    k = min(k, len(labels) - 1)
    return EmbeddingCheck(
        len(labels), k, knn_agreement(embedding, labels, k), majority_rate(labels), knn_agreement(pixels, labels, k)
    )
