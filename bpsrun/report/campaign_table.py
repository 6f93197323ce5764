"""The table a campaign prints when it ends: one row per round (and full supervision, when there is one)."""

from __future__ import annotations

from typing import Any

from bpsrun.label.timing import labeling_metrics
from bpsrun.layout import Layout


def row(name: str | int, m: dict[str, Any]) -> str:
    if "val_accuracy" not in m:  # trained before the validation labels were all in
        return f"{name:>5}  {m['n_labeled']:>7}  {'-':>7}  {'-':>7}  (validation labels missing)"
    return f"{name:>5}  {m['n_labeled']:>7}  {m['val_accuracy']:>7.3f}  {m['val_balanced_accuracy']:>7.3f}"


def labeling_minutes(layout: Layout, r: int, cap: float) -> str:
    path = layout.labels(r)
    seconds = labeling_metrics(layout.read_state(path), cap).get("labeling/seconds") if path.exists() else None
    return f"{'-':>8}" if seconds is None else f"{seconds / 60:>8.1f}"


def campaign_table(
    campaign: str, layout: Layout, rounds: int, reference: dict[str, Any] | None, cap: float = 600
) -> str:
    """`cap` is labeling.max_seconds_per_label; a column of labeling minutes appears once any round has times."""
    minutes = [labeling_minutes(layout, r, cap) for r in range(1, rounds + 1)]
    timed = any(m.strip() != "-" for m in minutes)
    head = f"{'round':>5}  {'labeled':>7}  {'val acc':>7}  {'bal acc':>7}" + ("  label min" if timed else "")
    lines = ["", f"campaign {campaign}", head]
    for r in range(1, rounds + 1):
        text = row(r, layout.read_state(layout.metrics(r)))
        lines.append(f"{text}  {minutes[r - 1]}" if timed else text)
    if reference is not None:
        lines.append(row("full", reference))
    return "\n".join(lines)
