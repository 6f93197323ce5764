"""The table a campaign prints when it ends: one row per round (and full supervision, when there is one)."""

from __future__ import annotations

from typing import Any

from bpsrun.layout import Layout


def row(name: str | int, m: dict[str, Any]) -> str:
    if "val_accuracy" not in m:  # trained before the validation labels were all in
        return f"{name:>5}  {m['n_labeled']:>7}  {'-':>7}  {'-':>7}  (validation labels missing)"
    return f"{name:>5}  {m['n_labeled']:>7}  {m['val_accuracy']:>7.3f}  {m['val_balanced_accuracy']:>7.3f}"


def campaign_table(campaign: str, layout: Layout, rounds: int, reference: dict[str, Any] | None) -> str:
    lines = ["", f"campaign {campaign}", f"{'round':>5}  {'labeled':>7}  {'val acc':>7}  {'bal acc':>7}"]
    lines += [row(r, layout.read_state(layout.metrics(r))) for r in range(1, rounds + 1)]
    if reference is not None:
        lines.append(row("full", reference))
    return "\n".join(lines)
