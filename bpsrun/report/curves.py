"""Learning-curve arithmetic, pure numpy: area under the curve, labels to reach a target, each arm against its
baseline seed by seed (the statistics are bpsrun/report/stats.py)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from bpsrun.report.stats import bootstrap_ci, common_seeds, geometric_mean, mean_sd, share_positive


@dataclass
class Curve:
    """One campaign: validation accuracy after each round, and its seed's full-supervision accuracy."""

    arm: str  # what the sweep varied apart from the seed (bpsrun/report/arms.py)
    seed: int
    campaign: str
    n_labeled: np.ndarray
    accuracy: np.ndarray
    full: float | None
    strategy: str  # selection.name
    minutes: np.ndarray | None = None  # cumulative labeling minutes per round; None: some time unknown
    # labeled images per round, where `n_labeled` counts annotations (a re-label or a second annotator costs one)
    images: np.ndarray | None = None


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


def labels_to_reach_between(n_labeled: np.ndarray, accuracy: np.ndarray, target: float) -> float:
    """The budget at which the curve first reaches `target`, linear between the rounds around it (the first
    round's budget if that round already does); NaN if it never does."""
    hit = np.flatnonzero(accuracy >= target)
    if not len(hit):
        return math.nan
    i = hit[0]
    if i == 0:
        return float(n_labeled[0])
    n0, n1, a0, a1 = n_labeled[i - 1], n_labeled[i], accuracy[i - 1], accuracy[i]
    return float(n0 + (target - a0) / (a1 - a0) * (n1 - n0))


def accuracy_at(curve: Curve, budget: int) -> float:
    hit = np.flatnonzero(curve.n_labeled == budget)
    return float(curve.accuracy[hit[0]]) if len(hit) else math.nan


def campaign_metrics(curve: Curve, fraction: float = 0.95) -> dict[str, float]:
    """What a campaign's MLflow parent run carries after a sweep."""
    out = {"aulc": aulc(curve.n_labeled, curve.accuracy), "final_val_accuracy": float(curve.accuracy[-1])}
    if curve.full is not None:
        out["full_supervision_accuracy"] = curve.full
        out["fraction_of_full"] = float(curve.accuracy[-1]) / curve.full
        out["labels_to_95pct_full"] = labels_to_reach(curve.n_labeled, curve.accuracy, fraction * curve.full)
        if curve.minutes is not None:
            out["minutes_to_95pct_full"] = labels_to_reach_between(curve.minutes, curve.accuracy, fraction * curve.full)
    return out


def targets(curves: list[Curve], fraction: float) -> dict[int, float]:
    """Per seed, `fraction` of the best full-supervision accuracy any arm's learner reached on it: one bar for
    every arm of that seed (same validation set), so labels to it compare across learners too. With one learner
    it is that seed's own reference."""
    best: dict[int, float] = {}
    for c in curves:
        if c.full is not None:
            best[c.seed] = max(best.get(c.seed, -math.inf), c.full)
    return {seed: fraction * full for seed, full in best.items()}


@dataclass
class Paired:
    """An arm minus its baseline, seed by seed."""

    baseline: str
    seeds: int  # seeds both ran
    aulc: tuple[float, float]  # mean, sd of the AULC differences
    ci: tuple[float, float]  # 95 % percentile-bootstrap interval of their mean
    beats: float  # share of those seeds on which the arm's AULC is higher
    labels_ratio: float  # geometric mean of arm / baseline labels to the target, where both reached it
    ratio_seeds: int
    curve: dict[int, tuple[float, float, float]]  # budget -> mean accuracy difference and its interval
    # labels the arm needs to reach the baseline's accuracy at the baseline's largest budget (same seed),
    # interpolated between rounds: (mean, sd) over the seeds where it does, their share of that budget (geometric
    # mean), and how many seeds did
    to_final: tuple[float, float]
    to_final_ratio: float
    to_final_seeds: int


@dataclass
class ArmMinutes:
    """An arm's accuracy against labeling minutes, when every seed's every time is known."""

    to_target: tuple[float, float]  # minutes to the 95 % bar, interpolated, over the seeds that reached it
    reached: int
    # per round all seeds finished: mean cumulative minutes, mean accuracy and its bootstrap interval
    minutes: np.ndarray
    accuracy: np.ndarray
    band: np.ndarray  # (2, rounds)


@dataclass
class ArmSummary:
    arm: str
    strategy: str
    seeds: list[int]
    budgets: list[int]
    accuracy: dict[int, tuple[float, float]]  # budget -> (mean, sd) over seeds
    band: dict[int, tuple[float, float]]  # budget -> 95 % bootstrap interval of the mean
    aulc: tuple[float, float]
    labels_to_target: tuple[float, float]  # over the seeds that reached it
    reached: int
    full: tuple[float, float]  # full supervision of the arm's learner, over seeds
    vs: Paired | None
    minutes: ArmMinutes | None  # None: some labeling time of the arm unknown
    images: float  # labeled images at the final round, mean over the seeds that count them (NaN: none does)
    fewer_images: bool  # some seed has fewer labeled images than annotations (overlap, re-labels)


@dataclass
class ArmSeeds:
    """An arm's per-seed figures, what pairing needs."""

    curves: dict[int, Curve]
    aulc: dict[int, float]
    labels: dict[int, float]  # NaN: never reached the target (or no reference)


def arm_seeds(group: list[Curve], target: dict[int, float]) -> ArmSeeds:
    curves = {c.seed: c for c in group}
    return ArmSeeds(
        curves,
        {s: aulc(c.n_labeled, c.accuracy) for s, c in curves.items()},
        {s: labels_to_reach(c.n_labeled, c.accuracy, target.get(s, math.nan)) for s, c in curves.items()},
    )


def budgets(curves: Iterable[Curve]) -> list[int]:
    return sorted({int(n) for c in curves for n in c.n_labeled})


def difference_curve(arm: ArmSeeds, base: ArmSeeds, seeds: list[int]) -> dict[int, tuple[float, float, float]]:
    """Per budget both ran, the mean paired accuracy difference and its bootstrap interval."""
    shared = set(budgets(arm.curves[s] for s in seeds)) & set(budgets(base.curves[s] for s in seeds))
    out = {}
    for b in sorted(shared):
        d = [accuracy_at(arm.curves[s], b) - accuracy_at(base.curves[s], b) for s in seeds]
        out[b] = (mean_sd(d)[0], *bootstrap_ci(d))
    return out


def labels_to_final(arm: Curve, base: Curve) -> tuple[float, float]:
    """Labels the arm needs to reach the baseline's final accuracy, and that as a share of the baseline's budget."""
    labels = labels_to_reach_between(arm.n_labeled, arm.accuracy, float(base.accuracy[-1]))
    return labels, labels / float(base.n_labeled[-1])


def pair(arm: ArmSeeds, base: ArmSeeds, name: str) -> Paired:
    seeds = common_seeds(arm.aulc, base.aulc)
    diffs = [arm.aulc[s] - base.aulc[s] for s in seeds]
    ratios = [arm.labels[s] / base.labels[s] for s in common_seeds(arm.labels, base.labels)]
    to_final = [labels_to_final(arm.curves[s], base.curves[s]) for s in seeds]
    reached = [(n, r) for n, r in to_final if not math.isnan(n)]
    return Paired(
        baseline=name,
        seeds=len(seeds),
        aulc=mean_sd(diffs),
        ci=bootstrap_ci(diffs),
        beats=share_positive(diffs),
        labels_ratio=geometric_mean(ratios),
        ratio_seeds=len(ratios),
        curve=difference_curve(arm, base, seeds),
        to_final=mean_sd([n for n, _ in reached]),
        to_final_ratio=geometric_mean([r for _, r in reached]),
        to_final_seeds=len(reached),
    )


def arm_minutes(group: list[Curve], target: dict[int, float]) -> ArmMinutes | None:
    """Minutes to each seed's bar (linear between rounds, the first round's minutes if it already reaches it)
    and the mean curve against minutes; None if any seed lacks minutes: the arm's cost is then unknown."""
    if any(c.minutes is None for c in group):
        return None
    to = [labels_to_reach_between(c.minutes, c.accuracy, target.get(c.seed, math.nan)) for c in group]
    rounds = min(len(c.minutes) for c in group)  # seeds meet round by round, not minute by minute
    acc = np.array([c.accuracy[:rounds] for c in group])
    return ArmMinutes(
        to_target=mean_sd(to),
        reached=sum(not math.isnan(v) for v in to),
        minutes=np.mean([c.minutes[:rounds] for c in group], axis=0),
        accuracy=acc.mean(axis=0),
        band=np.array([bootstrap_ci(acc[:, r]) for r in range(rounds)]).T,
    )


def fewer_images(curve: Curve) -> bool:
    return curve.images is not None and bool(np.any(curve.images != curve.n_labeled))


def summarize(curves: list[Curve], baselines: dict[str, str | None], fraction: float = 0.95) -> list[ArmSummary]:
    """One row per arm, in first-seen order; `baselines` maps each arm to the arm it is paired with (or None)."""
    target = targets(curves, fraction)
    names = list(dict.fromkeys(c.arm for c in curves))
    per_arm = {a: arm_seeds([c for c in curves if c.arm == a], target) for a in names}
    rows = []
    for a in names:
        data = per_arm[a]
        group = list(data.curves.values())
        at = {b: [accuracy_at(c, b) for c in group] for b in budgets(group)}
        base = baselines.get(a)
        rows.append(
            ArmSummary(
                arm=a,
                strategy=group[0].strategy,
                seeds=sorted(data.curves),
                budgets=list(at),
                accuracy={b: mean_sd(v) for b, v in at.items()},
                band={b: bootstrap_ci(v) for b, v in at.items()},
                aulc=mean_sd(list(data.aulc.values())),
                labels_to_target=mean_sd(list(data.labels.values())),
                reached=sum(not math.isnan(v) for v in data.labels.values()),
                full=mean_sd([c.full for c in group if c.full is not None]),
                vs=pair(data, per_arm[base], base) if base in per_arm else None,
                minutes=arm_minutes(group, target),
                images=mean_sd([c.images[-1] for c in group if c.images is not None])[0],
                fewer_images=any(map(fewer_images, group)),
            )
        )
    return rows
