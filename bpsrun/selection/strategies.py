"""Per-strategy objectives beyond DIVERSITY: THRESHOLD filters, TYPICALITY, SIMILARITY and BALANCE. Pure numpy."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np

from bpsrun.errors import BpsrunError
from bpsrun.selection.greedy import EPS, min_distances, unit_rows
from bpsrun.selection.kmeans import excess, kmeans

OPERATIONS = {
    "SMALLER": operator.lt,
    "SMALLER_EQUAL": operator.le,
    "BIGGER": operator.gt,
    "BIGGER_EQUAL": operator.ge,
}


def threshold_mask(values: np.ndarray, threshold: float, operation: str) -> np.ndarray:
    """Candidates that pass `values <operation> threshold`."""
    return OPERATIONS[operation](np.asarray(values, dtype=np.float64), threshold)


# up to this many samples TYPICALITY is the exact kNN (N^2 * D: about 0.5 s at 10,000 x 128 on 2 cores); above,
# an inverted-file search: sqrt(N) k-means cells, each sample's neighbours searched in its PROBES nearest cells
EXACT_UP_TO = 10_000
PROBES = 8
FIT_PER_CELL = 32  # the cells' k-means is fitted on a seeded subsample of this many samples per cell
BLOCK = 1 << 22  # similarities computed at once by the inverted-file search (16 MiB in float32)


def typicality(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """TypiClust's typicality: 1 / mean distance to the k nearest other samples (unit-normalised embeddings).

    Exact up to EXACT_UP_TO samples, approximate (inverted file) above; never an N x N matrix in memory.
    `seed` seeds the cells' k-means only: the exact value it approximates does not depend on it.
    """
    x = unit_rows(x)
    k = min(k, len(x) - 1)
    if k < 1:
        return np.ones(len(x))
    if len(x) <= EXACT_UP_TO:
        sims = nearest_sims(x, np.arange(len(x)), k)
    else:
        cells = int(round(np.sqrt(len(x))))
        fit = np.random.default_rng(seed).choice(len(x), size=min(len(x), FIT_PER_CELL * cells), replace=False)
        sims = probed_sims(x, k, kmeans(x[np.sort(fit)], cells, seed=seed, iters=10)[0], PROBES)
    return 1.0 / np.maximum(np.sqrt(np.maximum(2.0 - 2.0 * sims, 0.0)).mean(axis=1), EPS)


def nearest_sims(x: np.ndarray, rows: np.ndarray, k: int, chunk: int = 512) -> np.ndarray:
    """The k largest cosine similarities of each unit row x[rows] to the other rows of x (exact, unordered)."""
    out = np.empty((len(rows), k), dtype=x.dtype)
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        sims = x[part] @ x.T
        sims[np.arange(len(part)), part] = -np.inf  # a sample is not its own neighbour
        out[start : start + chunk] = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
    return out


def probed_sims(x: np.ndarray, k: int, centres: np.ndarray, probes: int) -> np.ndarray:
    """nearest_sims for all rows, searched only in each row's `probes` nearest cells (a cell: the rows nearest to
    one of `centres`); probes >= len(centres) is exact. Cells are visited one by one and merged into a running top
    k per row; a row whose probed cells hold fewer than k others gets the exact search. Memory: O(N * probes)
    for the lists, and BLOCK similarities at a time."""
    cells, step = len(centres), 8192
    probes = min(probes, cells)
    labels = np.empty(len(x), dtype=np.int64)
    near = np.empty((len(x), probes), dtype=np.int64)
    for start in range(0, len(x), step):
        gaps = excess(x[start : start + step], centres)
        labels[start : start + step] = gaps.argmin(axis=1)
        near[start : start + step] = np.argpartition(gaps, probes - 1, axis=1)[:, :probes]
    members = np.split(np.argsort(labels, kind="stable"), np.cumsum(np.bincount(labels, minlength=cells))[:-1])
    flat = near.ravel()
    askers = np.split(np.argsort(flat, kind="stable") // probes, np.cumsum(np.bincount(flat, minlength=cells))[:-1])
    best = np.full((len(x), k), -np.inf, dtype=x.dtype)
    position = np.full(len(x), -1)  # a row's column in the cell being searched, -1 outside it
    for own, asking in zip(members, askers):
        position[own] = np.arange(len(own))
        pool = x[own]
        rows = max(1, BLOCK // max(len(own), 1))
        for start in range(0, len(asking), rows):
            q = asking[start : start + rows]
            sims = x[q] @ pool.T
            inside = np.nonzero(position[q] >= 0)[0]
            sims[inside, position[q[inside]]] = -np.inf  # a sample is not its own neighbour
            merged = np.concatenate([best[q], sims], axis=1)
            best[q] = np.partition(merged, merged.shape[1] - k, axis=1)[:, -k:]
        position[own] = -1
    short = np.nonzero(np.isinf(best).any(axis=1))[0]
    best[short] = nearest_sims(x, short, k)
    return best


def similarity(x: np.ndarray, query: np.ndarray) -> np.ndarray:
    """1 - d/2 for the distance d to the nearest query sample: 1 for a duplicate, 0 for the opposite direction."""
    return 1.0 - min_distances(unit_rows(x), unit_rows(query)) / 2.0


def balance_targets(values: np.ndarray, target: dict[str, float] | None, distribution: str) -> dict[str, float]:
    """Target fraction per value. TARGET: as given, with the remainder shared equally by unlisted values present
    in the pool; UNIFORM: equal shares of the values present; INPUT: the pool's own frequencies.

    The value "" (a class outside `input.categories`, or a missing metadata value) never gets a share.
    """
    values = values[values.astype(str) != ""]
    present = sorted({str(v) for v in values})
    if distribution == "UNIFORM":
        return {v: 1.0 / len(present) for v in present}
    if distribution == "INPUT":
        uniq, counts = np.unique(values.astype(str), return_counts=True)
        return {str(v): c / len(values) for v, c in zip(uniq, counts)}
    target = {str(k): float(v) for k, v in (target or {}).items()}
    total = sum(target.values())
    if total > 1 + 1e-9:
        raise BpsrunError(f"BALANCE target fractions sum to {total:.3f}; they must sum to at most 1")
    others = [v for v in present if v not in target]
    share = (1.0 - total) / len(others) if others else 0.0
    return {**target, **{v: share for v in others}}


@dataclass
class Balance:
    """Each pick favours the value furthest below its target count: objective = strength * log(deficit).

    Values without a target have deficit 0 and are picked only when nothing else is left.
    """

    values: np.ndarray
    targets: dict[str, float]
    n: int
    strength: float = 1.0
    codes: np.ndarray = field(init=False)
    deficit: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        names = list(self.targets)
        index = {v: k for k, v in enumerate(names)}
        self.codes = np.array([index.get(str(v), len(names)) for v in self.values])
        self.deficit = np.array([self.targets[v] * self.n for v in names] + [0.0])

    def log_objective(self) -> np.ndarray:
        return self.strength * np.log(np.maximum(self.deficit[self.codes], 0.0) + EPS)

    def stops(self, i: int) -> bool:
        return False

    def update(self, i: int) -> None:
        if self.codes[i] < len(self.deficit) - 1:
            self.deficit[self.codes[i]] -= 1.0


@dataclass
class StopBelow:
    """A stop condition on a static value (TYPICALITY's stopping_condition_minimum_typicality)."""

    values: np.ndarray
    minimum: float

    def log_objective(self) -> float:
        return 0.0

    def stops(self, i: int) -> bool:
        return bool(self.values[i] < self.minimum)

    def update(self, i: int) -> None:
        return None


@dataclass
class SumStop:
    """WEIGHTS' stopping_condition_max_sum: picking stops once the picks' input values sum to `max_sum` or more."""

    values: np.ndarray
    max_sum: float
    total: float = 0.0

    def log_objective(self) -> float:
        return 0.0

    def stops(self, i: int) -> bool:
        return self.total >= self.max_sum

    def update(self, i: int) -> None:
        self.total += float(self.values[i])


@dataclass
class TargetRange:
    """WEIGHTS' target_range: steer the picks' summed input into [min_sum, max_sum].

    Below min_sum the objective is the value itself (high values close the gap fastest); once there it is
    neutral (1) for candidates that keep the sum within max_sum. A candidate that would overshoot max_sum gets
    the floor EPS, so it is picked only when nothing else is left: a soft target, as in Lightly's docs.
    """

    values: np.ndarray
    min_sum: float = 0.0
    max_sum: float = np.inf
    strength: float = 1.0
    total: float = 0.0

    def log_objective(self) -> np.ndarray:
        overshoot = self.total + self.values > self.max_sum
        if self.total < self.min_sum:
            out = self.strength * np.log(np.clip(self.values, 0, None) + EPS)
        else:
            out = np.zeros(len(self.values))
        return np.where(overshoot, np.log(EPS), out)

    def stops(self, i: int) -> bool:
        return False

    def update(self, i: int) -> None:
        self.total += float(self.values[i])
