"""The combining optimiser: greedy maximisation of a product of per-strategy objectives.

Each pick maximises  sum_s strength_s * log(f_s(i))  over the still-available candidates, where f_s is a static
weight (WEIGHTS) or the distance to the nearest already chosen or labeled sample (DIVERSITY), recomputed after
every pick. Only DIVERSITY with nothing labeled yet is special: its first pick uses the distance to the pool's
centroid, i.e. the most atypical sample. Ties go to the lowest index, so results are deterministic.
Cost: O(n * N * D) for n picks from N candidates with D-dimensional embeddings, O(N) memory per objective.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

EPS = 1e-12


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), EPS)


def min_distances(x: np.ndarray, centres: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Distance from each unit row of x to its nearest unit row of centres, without an N x M matrix in memory."""
    best = np.full(len(x), -np.inf, dtype=np.float32)
    for start in range(0, len(centres), chunk):
        sims = x @ centres[start : start + chunk].T
        np.maximum(best, sims.max(axis=1), out=best)
    return np.sqrt(np.maximum(2.0 - 2.0 * best, 0.0))


@dataclass
class Diversity:
    """k-center greedy on unit-normalised embeddings; `labeled` rows count as already chosen centres.

    It tracks each sample's largest cosine similarity to a centre (distance^2 = 2 - 2 * similarity), so a pick
    costs one matrix-vector product and one running maximum; picked samples get similarity +inf.
    """

    x: np.ndarray
    strength: float = 1.0
    labeled: np.ndarray | None = None
    min_distance: float | None = None
    best_sim: np.ndarray = field(init=False)
    has_centres: bool = field(init=False)

    def __post_init__(self) -> None:
        self.x = unit_rows(self.x)
        self.has_centres = self.labeled is not None and len(self.labeled) > 0
        if self.has_centres:
            self.best_sim = 1.0 - min_distances(self.x, unit_rows(self.labeled)) ** 2 / 2.0
        else:  # before any centre: the distance to the centroid stands in, expressed as a similarity
            self.best_sim = 1.0 - np.linalg.norm(self.x - self.x.mean(axis=0), axis=1) ** 2 / 2.0

    @property
    def dist(self) -> np.ndarray:
        return np.sqrt(np.maximum(2.0 - 2.0 * self.best_sim, 0.0))

    def farthest(self) -> int:
        return int(np.argmin(self.best_sim))

    def log_objective(self) -> np.ndarray:
        return self.strength * np.log(self.dist + EPS)

    def stops(self, i: int) -> bool:
        return self.has_centres and self.min_distance is not None and self.dist[i] < self.min_distance

    def update(self, i: int) -> None:
        sims = self.x @ self.x[i]
        if self.has_centres:
            np.maximum(self.best_sim, sims, out=self.best_sim)
        else:
            self.best_sim = sims
        self.best_sim[i] = np.inf
        self.has_centres = True


def kcenter(n: int, d: Diversity) -> list[int]:
    """Plain k-center greedy: the sample least similar to every centre, n times (no logs, no masks)."""
    picks: list[int] = []
    for _ in range(min(n, len(d.x))):
        i = d.farthest()
        if d.stops(i):
            break
        picks.append(i)
        d.update(i)
    return picks


class Objective(Protocol):
    """A per-pick objective whose values change as samples are picked (DIVERSITY, BALANCE, stop conditions)."""

    def log_objective(self) -> np.ndarray | float: ...

    def stops(self, i: int) -> bool: ...

    def update(self, i: int) -> None: ...


def greedy_select(
    n: int, static_log: np.ndarray, dynamic: Sequence[Objective], available: np.ndarray | None = None
) -> list[int]:
    """Pick up to n indices among `available` (all by default; THRESHOLD filters narrow it).

    `static_log` is the summed strength * log(value) of the static objectives (WEIGHTS, TYPICALITY, SIMILARITY).
    """
    objective = static_log.astype(np.float64).copy()
    available = np.ones(len(objective), dtype=bool) if available is None else available.copy()
    picks: list[int] = []
    if not dynamic:  # a static objective needs no loop: a stable sort keeps ties in index order
        order = np.argsort(-objective, kind="stable")
        return [int(i) for i in order[available[order]][:n]]
    if len(dynamic) == 1 and isinstance(dynamic[0], Diversity) and not objective.any() and available.all():
        return kcenter(n, dynamic[0])
    for _ in range(min(n, int(available.sum()))):
        total = objective + sum(d.log_objective() for d in dynamic)
        total[~available] = -np.inf
        i = int(np.argmax(total))
        if any(d.stops(i) for d in dynamic):
            break
        picks.append(i)
        available[i] = False
        for d in dynamic:
            d.update(i)
    return picks
