"""Every Lightning Trainer bpsrun runs is built here, from the one `trainer` config (devices, precision,
deterministic): classifier training, validation and prediction, and the self-supervised embedding."""

from __future__ import annotations

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from bpsrun.model.schedules import Schedule
from bpsrun.plugins import build


class Trainers:
    """The `trainer` config's factory (a plain class: parts receive it at build time, outside any config)."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.eval_batch_size = int(cfg.eval_batch_size)
        self.min_samples_per_epoch = int(cfg.min_samples_per_epoch)
        self.lr_schedule: Schedule = build(cfg.lr_schedule, "trainer/lr_schedule")

    def trainer(self, **overrides) -> pl.Trainer:
        """A Trainer from `trainer.lightning`, with `overrides` (e.g. the embedding's own max_epochs)."""
        return instantiate(self.cfg.lightning, **overrides)
