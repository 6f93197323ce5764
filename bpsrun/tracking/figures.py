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


TILE = 64  # pixels per pick


def tile(path: Path) -> np.ndarray:
    """The image's 8-bit rendering, padded to a square with black and shrunk to TILE x TILE (nearest pixel)."""
    img = render_8bit(read_image(path))
    side = max(img.shape)
    square = np.zeros((side, side), dtype=np.uint8)
    top, left = (side - img.shape[0]) // 2, (side - img.shape[1]) // 2
    square[top : top + img.shape[0], left : left + img.shape[1]] = img
    index = (np.arange(TILE) * side) // TILE
    return square[np.ix_(index, index)]


def short(name: str, width: int = 22) -> str:
    stem = Path(name).stem
    return stem if len(stem) <= width else "…" + stem[-(width - 1) :]


ROW = 1.5  # a row of the grid: a tile (height 1) and its caption


def picks_png(path: Path, images: list[Path], captions: list[str], cols: int = 10) -> None:
    """The round's picks on one axis (no subplot per pick), each tile captioned: file name, label, and the
    prediction it was picked on."""
    rows = max(1, -(-len(images) // cols))
    fig, ax = plt.subplots(figsize=(cols * 1.3, rows * ROW * 1.3), dpi=100)
    for k, (img, caption) in enumerate(zip(images, captions)):
        r, c = divmod(k, cols)
        top = r * ROW
        ax.imshow(tile(img), cmap="gray", vmin=0, vmax=255, extent=(c + 0.05, c + 0.95, top + 1.0, top))
        ax.text(c + 0.5, top + 1.04, caption, ha="center", va="top", fontsize=5.5, linespacing=1.15)
    ax.set_xlim(0, cols)
    ax.set_ylim(rows * ROW, 0)
    ax.axis("off")
    fig.subplots_adjust(left=0, right=1, top=1, bottom=0)
    fig.savefig(path)
    plt.close(fig)
