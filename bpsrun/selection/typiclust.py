"""TypiClust (Hacohen et al., "Active learning on a budget", ICML 2022): the most typical sample of each large,
still-unlabeled k-means cluster of the pool. A bpsrun extension strategy (`type: TYPICLUST`)."""

from __future__ import annotations

import numpy as np

from bpsrun.selection.greedy import EPS
from bpsrun.selection.kmeans import kmeans
from bpsrun.selection.strategies import typicality


def pool_of(x: np.ndarray, labeled: np.ndarray | None, dtype: type = np.float32) -> np.ndarray:
    """Candidates' unit rows first, then the labeled samples' (pool index i < len(x) is candidate i)."""
    pool = np.concatenate([x] + ([labeled] if labeled is not None else [])).astype(dtype)
    return pool / np.maximum(np.linalg.norm(pool, axis=1, keepdims=True), EPS)


def typiclust(
    x: np.ndarray,
    labeled: np.ndarray | None,
    n: int,
    num_nearest_neighbors: int = 20,
    max_clusters: int = 500,
    min_cluster_size: int = 5,
    seed: int = 0,
) -> list[int]:
    """n candidate indices, in pick order.

    The pool (candidates and labeled samples) is clustered into min(|labeled| + n, max_clusters) k-means clusters.
    Each pick takes the cluster with the fewest labeled samples (then the larger, then the lower index) among
    those with candidates left, skipping clusters below min_cluster_size while others remain, and picks its
    candidate of highest typicality: 1 / mean distance to its min(k, size - 1) nearest neighbours in the cluster,
    over all its members (a density of the data, unchanged by labeling). The pick then counts as labeled.
    """
    pool = pool_of(x, labeled)
    _, labels = kmeans(pool, min(len(pool) - len(x) + n, max_clusters), seed=seed)
    clusters = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=clusters)
    labeled_count = np.bincount(labels[len(x) :], minlength=clusters)
    left = np.bincount(labels[: len(x)], minlength=clusters)  # candidates not picked yet
    taken = np.zeros(len(x), dtype=bool)
    scores: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # cluster -> its candidates, their typicality
    picks: list[int] = []
    for _ in range(n):
        open_ = left > 0
        large = open_ & (sizes >= min_cluster_size)
        allowed = np.nonzero(large if large.any() else open_)[0]
        c = int(allowed[np.lexsort((allowed, -sizes[allowed], labeled_count[allowed]))[0]])
        if c not in scores:
            members = np.nonzero(labels == c)[0]
            values = typicality(pool[members], num_nearest_neighbors)
            scores[c] = members[members < len(x)], values[members < len(x)]
        candidates, values = scores[c]
        i = int(candidates[np.argmax(np.where(taken[candidates], -np.inf, values))])
        picks.append(i)
        taken[i] = True
        labeled_count[c] += 1
        left[c] -= 1
    return picks
