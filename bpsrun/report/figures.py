"""A sweep's PNG: every strategy's learning curve against full supervision."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bpsrun.report.curves import StrategySummary  # noqa: E402


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
