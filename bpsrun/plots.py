"""PNG figures for MLflow: the confusion matrix, a grid of the round's picks, a sweep's learning curves."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bpsrun.data.images import read_image, render_8bit  # noqa: E402
from bpsrun.report.curves import StrategySummary  # noqa: E402


def confusion_png(path: Path, confusion: list[list[int]], classes: list[str], title: str) -> None:
    fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=120)
    ax.imshow(np.asarray(confusion), cmap="Blues")
    for (i, j), v in np.ndenumerate(np.asarray(confusion)):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def picks_png(path: Path, images: list[Path], captions: list[str], cols: int = 10) -> None:
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.35), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, caption in zip(axes.flat, images, captions):
        ax.imshow(render_8bit(read_image(img)), cmap="gray")
        ax.set_title(caption, fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def learning_curves_png(
    path: Path | BinaryIO, rows: list[StrategySummary], full: tuple[float, float], title: str
) -> None:
    """Validation accuracy vs labels, mean and +-1 sd band per strategy; full supervision and 95 % of it as lines."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for row in rows:
        n = np.array(row.budgets)
        mean = np.array([row.accuracy[b][0] for b in row.budgets])
        sd = np.array([row.accuracy[b][1] for b in row.budgets])
        (line,) = ax.plot(n, mean, marker="o", ms=3, label=f"{row.strategy} (n={len(row.seeds)})")
        ax.fill_between(n, mean - sd, mean + sd, color=line.get_color(), alpha=0.15)
    if not np.isnan(full[0]):
        ax.axhline(full[0], color="black", ls="--", lw=1, label=f"full supervision {full[0]:.3f}")
        ax.axhspan(full[0] - full[1], full[0] + full[1], color="black", alpha=0.06)
        ax.axhline(0.95 * full[0], color="gray", ls=":", lw=1, label="95 % of full supervision")
    ax.set_xlabel("labeled images")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
