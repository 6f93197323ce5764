"""Per-strategy objectives beyond DIVERSITY: THRESHOLD filters, TYPICALITY, SIMILARITY and BALANCE. Pure numpy."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np

from bpsrun.errors import BpsrunError
from bpsrun.selection.greedy import EPS, min_distances, unit_rows

OPERATIONS = {
    "SMALLER": operator.lt,
    "SMALLER_EQUAL": operator.le,
    "BIGGER": operator.gt,
    "BIGGER_EQUAL": operator.ge,
}


def threshold_mask(values: np.ndarray, threshold: float, operation: str) -> np.ndarray:
    """Candidates that pass `values <operation> threshold`."""
    return OPERATIONS[operation](np.asarray(values, dtype=np.float64), threshold)


def typicality(x: np.ndarray, k: int, chunk: int = 512) -> np.ndarray:
    """TypiClust's typicality: 1 / mean distance to the k nearest other samples (unit-normalised embeddings).

    Computed in row chunks (memory O(chunk * N), never N x N).
    """
    x = unit_rows(x)
    k = min(k, len(x) - 1)
    if k < 1:
        return np.ones(len(x))
    out = np.empty(len(x))
    for start in range(0, len(x), chunk):
        sims = x[start : start + chunk] @ x.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf  # a sample is not its own neighbour
        top = np.partition(-sims, k - 1, axis=1)[:, :k]
        dist = np.sqrt(np.maximum(2.0 + 2.0 * top, 0.0))  # -top are the k largest similarities
        out[start : start + chunk] = 1.0 / np.maximum(dist.mean(axis=1), EPS)
    return out


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
