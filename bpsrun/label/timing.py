"""Labeling time of a round, from its annotation records' `lead_time` (seconds; null when unknown).

A record's time is capped at `labeling.max_seconds_per_label`: an annotator who leaves a task open over lunch
would otherwise dominate the round's total. Unknown times are counted, never taken as 0.
"""

from __future__ import annotations

import statistics
from typing import Any

from omegaconf import DictConfig


def seconds_cap(cfg: DictConfig) -> float:
    """labeling.max_seconds_per_label (a key of every labeler, read by the campaign)."""
    return float(cfg.labeling.get("max_seconds_per_label", 600))


def labeling_metrics(records: list[dict[str, Any]], cap: float) -> dict[str, float]:
    """labeling/* metrics of one round: seconds (sum, capped), seconds_per_label (median), annotations,
    time_unknown, time_capped; the seconds metrics only when some time is known."""
    raw = [float(rec["lead_time"]) for rec in records if rec.get("lead_time") is not None]
    seconds = [min(t, cap) for t in raw]
    metrics = {
        "labeling/annotations": float(len(records)),
        "labeling/time_unknown": float(len(records) - len(raw)),
        "labeling/time_capped": float(sum(t > cap for t in raw)),
    }
    if seconds:
        metrics["labeling/seconds"] = sum(seconds)
        metrics["labeling/seconds_per_label"] = statistics.median(seconds)
    return metrics
