"""Learning-curve arithmetic, pure numpy: area under the curve, labels to reach a target, spread over seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Curve:
    """One campaign: validation accuracy after each round, and its seed's full-supervision accuracy."""

    strategy: str
    seed: int
    campaign: str
    n_labeled: np.ndarray
    accuracy: np.ndarray
    full: float | None


def aulc(n_labeled: np.ndarray, accuracy: np.ndarray) -> float:
    """Area under the learning curve (trapezoids) divided by the label range: the curve's mean accuracy."""
    if len(n_labeled) == 1:
        return float(accuracy[0])
    span = float(n_labeled[-1] - n_labeled[0])
    return float(np.sum((accuracy[1:] + accuracy[:-1]) / 2 * np.diff(n_labeled)) / span)


def labels_to_reach(n_labeled: np.ndarray, accuracy: np.ndarray, target: float) -> float:
    """The smallest budget whose accuracy reaches `target`; NaN if none does."""
    hit = np.flatnonzero(accuracy >= target)
    return float(n_labeled[hit[0]]) if len(hit) else math.nan


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaN values are left out."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


@dataclass
class StrategySummary:
    strategy: str
    seeds: list[int]
    budgets: list[int]
    accuracy: dict[int, tuple[float, float]]  # budget -> (mean, sd) over seeds
    aulc: tuple[float, float]
    labels_to_95: tuple[float, float]  # over the seeds that reached it
    reached_95: int
    vs_random: tuple[float, float] | None  # AULC minus random's, paired by seed


def campaign_metrics(curve: Curve, fraction: float = 0.95) -> dict[str, float]:
    """What a campaign's MLflow parent run carries after a sweep."""
    out = {"aulc": aulc(curve.n_labeled, curve.accuracy), "final_val_accuracy": float(curve.accuracy[-1])}
    if curve.full is not None:
        out["full_supervision_accuracy"] = curve.full
        out["fraction_of_full"] = float(curve.accuracy[-1]) / curve.full
        out["labels_to_95pct_full"] = labels_to_reach(curve.n_labeled, curve.accuracy, fraction * curve.full)
    return out


def summarize(curves: list[Curve], fraction: float = 0.95, baseline: str = "random") -> list[StrategySummary]:
    """One row per strategy, in first-seen order."""
    base = {c.seed: aulc(c.n_labeled, c.accuracy) for c in curves if c.strategy == baseline}
    rows = []
    for strategy in dict.fromkeys(c.strategy for c in curves):
        group = [c for c in curves if c.strategy == strategy]
        budgets = sorted({int(n) for c in group for n in c.n_labeled})
        accuracy = {
            b: mean_sd([float(c.accuracy[list(c.n_labeled).index(b)]) for c in group if b in c.n_labeled])
            for b in budgets
        }
        areas = {c.seed: aulc(c.n_labeled, c.accuracy) for c in group}
        to_95 = [
            labels_to_reach(c.n_labeled, c.accuracy, fraction * c.full) if c.full is not None else math.nan
            for c in group
        ]
        paired = [areas[s] - base[s] for s in areas if s in base]
        rows.append(
            StrategySummary(
                strategy=strategy,
                seeds=sorted(c.seed for c in group),
                budgets=budgets,
                accuracy=accuracy,
                aulc=mean_sd(list(areas.values())),
                labels_to_95=mean_sd(to_95),
                reached_95=sum(not math.isnan(v) for v in to_95),
                vs_random=mean_sd(paired) if paired and strategy != baseline else None,
            )
        )
    return rows
