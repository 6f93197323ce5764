"""Seeded k-means in pure numpy: k-means++ initialisation, then Lloyd iterations. The same seed and input give the
same centres and labels; ties go to the lower centre index."""

from __future__ import annotations

import numpy as np


def excess(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """|x - c|^2 - |x|^2 for each row and centre: a row's own |x|^2 does not change which centre is nearest."""
    return (centres.astype(np.float64) ** 2).sum(axis=1).astype(x.dtype) - 2.0 * (x @ centres.T)


def assign(x: np.ndarray, centres: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Each row's nearest centre (squared Euclidean), in row chunks: memory O(chunk * k), never N x k at once."""
    labels = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), chunk):
        labels[start : start + chunk] = excess(x[start : start + chunk], centres).argmin(axis=1)
    return labels


def plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeds: each next seed drawn with probability proportional to its squared distance to the seeds."""
    norms = (x.astype(np.float64) ** 2).sum(axis=1)

    def to(i: int) -> np.ndarray:  # squared distances to row i (einsum: OpenBLAS's threaded gemv is slower here)
        return np.maximum(norms + norms[i] - 2.0 * np.einsum("ij,j->i", x, x[i]), 0.0)

    seeds = [int(rng.integers(len(x)))]
    d2 = to(seeds[0])
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct points than k: repeat a seed (its cluster stays empty)
            seeds.append(seeds[-1])
            continue
        i = min(int(np.searchsorted(np.cumsum(d2), rng.random() * total, side="right")), len(x) - 1)
        seeds.append(i)
        np.minimum(d2, to(i), out=d2)
    return x[seeds]


def means(x: np.ndarray, labels: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Each cluster's mean (summed in float64); an empty cluster keeps its previous centre."""
    counts = np.bincount(labels, minlength=len(previous))
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    full = counts > 0
    out = previous.copy()
    sums = np.add.reduceat(x[order], starts[full], axis=0, dtype=np.float64)
    out[full] = (sums / counts[full, None]).astype(x.dtype)
    return out


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Centres (k x D) and a label per row, after Lloyd iterations until no label changes (at most `iters`)."""
    k = max(1, min(k, len(x)))
    centres = plus_plus(x, k, np.random.default_rng(seed))
    labels = assign(x, centres)
    for _ in range(iters):
        centres = means(x, labels, centres)
        new = assign(x, centres)
        if (new == labels).all():
            break
        labels = new
    return centres, labels
