"""A round's PNG artifacts for MLflow: the validation confusion matrix and a grid of the round's picks."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bpsrun.data.images import read_image, render_8bit  # noqa: E402


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
