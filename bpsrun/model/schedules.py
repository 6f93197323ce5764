"""Learning-rate schedules, chosen by `conf/trainer/lr_schedule/<name>.yaml`'s `_target_`.

A schedule is called with the optimiser and the run's number of optimiser steps, and returns what Lightning's
`configure_optimizers` returns.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class Schedule(Protocol):
    def __call__(self, optimizer: torch.optim.Optimizer, total_steps: int) -> Any: ...


class Constant:
    def __call__(self, optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.Optimizer:
        return optimizer


class Cosine:
    """Cosine to zero over every optimiser step: the last epochs settle instead of ending wherever a
    constant-rate step happened to land (final accuracy then swings by 20 points between runs)."""

    def __call__(self, optimizer: torch.optim.Optimizer, total_steps: int) -> dict[str, Any]:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
