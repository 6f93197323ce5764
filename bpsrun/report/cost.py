"""A campaign's labeling cost per round, from its files: cumulative labeling minutes and annotations.

Minutes are the capped `lead_time`s of each round's labels.json (bpsrun/label/timing.py). An unknown time is
never taken as 0, so a campaign with one is left without minutes rather than shown cheaper than it was.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from bpsrun.label.timing import labeling_metrics
from bpsrun.layout import Layout

Records = list[dict[str, Any]]


def round_records(root: Path, rounds: int) -> list[Records | None]:
    """Rounds 1..rounds' annotation records; None where a round has no labels.json."""
    layout = Layout(root)
    return [layout.read_state(layout.labels(r)) if layout.labels(r).exists() else None for r in range(1, rounds + 1)]


def cumulative_minutes(rounds: list[Records | None], cap: float) -> np.ndarray | None:
    """Labeling minutes of rounds 1..r at each round r; None unless every round's every time is known."""
    seconds = []
    for records in rounds:
        metrics = labeling_metrics(records, cap) if records is not None else {}
        if "labeling/seconds" not in metrics or metrics["labeling/time_unknown"]:
            return None
        seconds.append(metrics["labeling/seconds"])
    return np.cumsum(seconds) / 60


def cumulative_annotations(metrics: list[dict[str, Any]], rounds: list[Records | None]) -> np.ndarray | None:
    """Annotations of rounds 1..r at each round r: the round's `n_annotations`, else its labels.json records
    counted; None when neither says (campaigns older than both)."""
    counted = np.cumsum([math.nan if records is None else len(records) for records in rounds])
    out = np.array([m.get("n_annotations", n) for m, n in zip(metrics, counted)], dtype=float)
    return None if np.isnan(out).any() else out
