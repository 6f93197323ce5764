"""A sweep's PNGs: every arm's learning curve, and its paired difference to its baseline, with confidence bands;
and, where labeling times are known, accuracy against labeling minutes."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bpsrun.report.curves import ArmSummary  # noqa: E402
from bpsrun.report.stats import RESAMPLES  # noqa: E402

BAND = f"bands: 95 % percentile-bootstrap interval of the mean over seeds ({RESAMPLES:,} resamples)"


def arm_colors(rows: list[ArmSummary]) -> dict[str, str]:
    """An arm keeps its colour in every panel and figure."""
    return {row.arm: f"C{i % 10}" for i, row in enumerate(rows)}


def accuracy_axis(ax: plt.Axes, target: float) -> None:
    """The mean 95 % target as a line, the axis label and the legend."""
    if not np.isnan(target):
        ax.axhline(target, color="gray", ls=":", lw=1, label="95 % of full supervision (mean)")
    ax.set_ylabel("validation accuracy")
    ax.legend(fontsize=7, loc="best")


def curves_panel(ax: plt.Axes, rows: list[ArmSummary], target: float, colors: dict[str, str]) -> None:
    """Mean validation accuracy vs labels per arm with its band; the mean 95 % target as a line."""
    for row in rows:
        n = np.array(row.budgets)
        mean = np.array([row.accuracy[b][0] for b in row.budgets])
        low, high = np.array([row.band[b] for b in row.budgets]).T
        ax.plot(n, mean, marker="o", ms=3, color=colors[row.arm], label=f"{row.arm} (n={len(row.seeds)})")
        ax.fill_between(n, low, high, color=colors[row.arm], alpha=0.15)
    accuracy_axis(ax, target)


def difference_panel(ax: plt.Axes, rows: list[ArmSummary], colors: dict[str, str]) -> None:
    """Per arm with a baseline: mean paired accuracy difference to it at each budget, with its band."""
    ax.axhline(0, color="black", lw=1)
    paired = [row for row in rows if row.vs is not None and row.vs.curve]
    for row in paired:
        n = np.array(list(row.vs.curve))
        mean, low, high = np.array(list(row.vs.curve.values())).T
        label = f"{row.arm} - {row.vs.baseline} (n={row.vs.seeds})"
        ax.plot(n, mean, marker="o", ms=3, color=colors[row.arm], label=label)
        ax.fill_between(n, low, high, color=colors[row.arm], alpha=0.15)
    if paired:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no baseline arm in this sweep", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("accuracy - baseline (same seed)")


def save(fig: plt.Figure, path: Path | BinaryIO, title: str) -> None:
    fig.suptitle(f"{title}\n{BAND}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def learning_curves_png(path: Path | BinaryIO, rows: list[ArmSummary], target: float, title: str) -> None:
    """Left: each arm's learning curve; right: its paired difference to its baseline. Bands as BAND says."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=120)
    colors = arm_colors(rows)
    curves_panel(left, rows, target, colors)
    difference_panel(right, rows, colors)
    # budgets count annotations; they are labeled images unless some arm re-labels or overlaps
    xlabel = "annotations (labels given)" if any(r.fewer_images for r in rows) else "labeled images"
    for ax in (left, right):
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    save(fig, path, title)


def minutes_png(path: Path | BinaryIO, rows: list[ArmSummary], target: float, title: str) -> None:
    """Each arm whose labeling minutes are known: mean accuracy at each round against the seeds' mean labeling
    minutes so far, with the accuracy's band (seeds meet round by round: their minutes differ)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.8), dpi=120)
    colors = arm_colors(rows)
    for row in rows:
        if row.minutes is None:
            continue
        m = row.minutes
        ax.plot(m.minutes, m.accuracy, marker="o", ms=3, color=colors[row.arm], label=f"{row.arm} (n={len(row.seeds)})")
        ax.fill_between(m.minutes, *m.band, color=colors[row.arm], alpha=0.15)
    accuracy_axis(ax, target)
    ax.set_xlabel("labeling minutes (capped lead_time, mean over seeds)")
    ax.grid(alpha=0.3)
    save(fig, path, title)
