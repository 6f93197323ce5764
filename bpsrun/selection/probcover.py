"""ProbCover (Yehuda et al., "Active learning through a covering lens", NeurIPS 2022): greedy maximum coverage of
delta-balls on unit-normalised embeddings. A bpsrun extension strategy (`type: PROBCOVER`).

Memory: the delta-ball graph as sparse index lists (O(edges)), distances in row chunks (O(chunk * N)).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from bpsrun.selection.greedy import Diversity, kcenter
from bpsrun.selection.kmeans import kmeans
from bpsrun.selection.typiclust import pool_of


def distance_rows(x: np.ndarray, chunk: int = 512) -> Iterator[tuple[int, np.ndarray]]:
    """(start, Euclidean distances of unit rows x[start:start + chunk] to all rows), self distance exactly 0.

    The radius rule and the ball graph both read distances from here, so a radius taken from one distance is
    compared with the very same float when the balls are built.
    """
    for start in range(0, len(x), chunk):
        d = np.sqrt(np.maximum(2.0 - 2.0 * (x[start : start + chunk] @ x.T), 0.0))
        rows = np.arange(len(d))
        d[rows, start + rows] = 0.0
        yield start, d


def purity_radius(x: np.ndarray, classes: np.ndarray, purity: float) -> float:
    """The largest delta at which at least `purity` of the points have a pure ball (all points of
    B(p, delta) = {q : |p - q| < delta} share p's class).

    B(p, delta) is pure exactly when delta <= r(p), the distance from p to the nearest point of another class, so
    the share of pure balls falls as delta grows, and the largest admissible delta is the ceil(purity * N)-th
    largest r(p): exact, no grid of candidate radii. With one class only every ball is pure (infinite radius).
    """
    r = np.empty(len(x))
    for start, d in distance_rows(x):
        other = classes[None, :] != classes[start : start + len(d), None]
        r[start : start + len(d)] = np.where(other, d, np.inf).min(axis=1)
    m = max(1, math.ceil(purity * len(x) - 1e-9))  # 0.14 * 50 is 7.000000000000001 in floats: 7, not 8
    return float(np.sort(r)[::-1][m - 1])


@dataclass
class Lists:
    """Index lists in CSR form: list i is indices[indptr[i] : indptr[i + 1]]."""

    indptr: np.ndarray
    indices: np.ndarray

    @classmethod
    def of_pairs(cls, keys: np.ndarray, values: np.ndarray, n: int) -> Lists:
        order = np.argsort(keys, kind="stable")
        return cls(np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=n))]), values[order])

    def union(self, points: Sequence[int] | np.ndarray) -> np.ndarray:
        """The lists of `points`, concatenated (with repeats)."""
        return np.concatenate([self.indices[self.indptr[p] : self.indptr[p + 1]] for p in points] + [self.indices[:0]])


def ball_pairs(x: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(p, q) for every q in p's ball, |p - q| < radius (p itself included where radius > 0), by p."""
    ps, qs = [], []
    for start, d in distance_rows(x):
        p, q = np.nonzero(d < radius)
        ps.append(p + start)
        qs.append(q)
    return np.concatenate(ps), np.concatenate(qs)


def probcover(
    x: np.ndarray,
    labeled: np.ndarray | None,
    n: int,
    num_classes: int,
    radius: float | None = None,
    purity: float = 0.95,
    seed: int = 0,
) -> list[int]:
    """n candidate indices, in pick order.

    radius None: `purity_radius` on k-means pseudo-labels (k = num_classes) of the pool (candidates and labeled).
    Points in a labeled sample's ball are covered from the start. Each pick is the candidate whose ball holds the
    most uncovered points (ties: lowest index). Once everything is covered, the rest are farthest-first (k-center
    greedy from the labeled and picked samples): coverage at a shrinking radius, deterministic, where the paper
    picks at random.
    """
    pool = pool_of(x, labeled, np.float64)  # float64: a duplicate's distance stays near 0 (1e-8, not 1e-4)
    if radius is None:
        radius = purity_radius(pool, kmeans(pool, num_classes, seed=seed)[1], purity)
    ps, qs = ball_pairs(pool, radius)
    ball = Lists.of_pairs(ps, qs, len(pool))
    holders = Lists.of_pairs(qs, ps, len(pool))  # the points whose ball holds q: no reliance on float symmetry
    covered = np.zeros(len(pool), dtype=bool)
    covered[ball.union(np.arange(len(x), len(pool)))] = True
    degree = np.bincount(ps[~covered[qs]], minlength=len(pool))  # uncovered points in each ball
    picks: list[int] = []
    while len(picks) < n:
        i = int(np.argmax(degree[: len(x)]))
        if degree[i] == 0:
            break
        picks.append(i)
        new = ball.union([i])
        new = new[~covered[new]]
        covered[new] = True
        degree -= np.bincount(holders.union(new), minlength=len(pool))
    if len(picks) < n:
        centres = np.concatenate([pool[len(x) :], pool[picks]])
        rest = Diversity(pool[: len(x)], labeled=centres if len(centres) else None)
        rest.best_sim[picks] = np.inf  # never picked twice
        picks += kcenter(n - len(picks), rest)
    return picks
