"""Statistics over seeds, pure numpy: mean and spread, a percentile-bootstrap interval, pairing by seed.

Random selection is a strong baseline and a sweep has few seeds, so every claim the report makes about an arm
comes with its spread and an interval over seeds, computed the same way each time (a fixed resampling seed).
"""

from __future__ import annotations

import math

import numpy as np

LEVEL = 0.95
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # a report rebuilt from the same files prints the same intervals


def finite(values: list[float] | np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v[~np.isnan(v)]


def mean_sd(values: list[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaN values are left out."""
    v = finite(values)
    if len(v) == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def bootstrap_ci(
    values: list[float] | np.ndarray, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean: resample the values with replacement, take the quantiles of the
    resampled means. NaN for fewer than two values (one seed says nothing about the spread)."""
    v = finite(values)
    if len(v) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)  # a fresh generator per call: the interval does not depend on call order
    means = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def share_positive(values: list[float] | np.ndarray) -> float:
    """The share of values above zero (a tie is not a win); NaN if there are none."""
    v = finite(values)
    return float(np.mean(v > 0)) if len(v) else math.nan


def geometric_mean(values: list[float] | np.ndarray) -> float:
    """For ratios: halving and doubling average to 1, not to 1.25. NaN if there are none."""
    v = finite(values)
    return float(np.exp(np.log(v).mean())) if len(v) else math.nan


def common_seeds(a: dict[int, float], b: dict[int, float]) -> list[int]:
    """The seeds both have a finite value for, in order: what a paired comparison may use."""
    return sorted(s for s in a.keys() & b.keys() if not (math.isnan(a[s]) or math.isnan(b[s])))
