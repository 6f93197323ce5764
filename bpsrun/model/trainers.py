"""Every Lightning Trainer bpsrun runs is built here, from the one `trainer` config (devices, strategy, precision,
deterministic): classifier training, validation and prediction, and the self-supervised embedding."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.loggers import Logger

from bpsrun.model.schedules import Schedule
from bpsrun.plugins import build
from bpsrun.progress import interactive


class LineProgressBar(ProgressBar):
    """One line per tenth of the epochs (and the last), with the logged metrics; for output that is no terminal."""

    def __init__(self) -> None:
        super().__init__()
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch, total, steps = trainer.current_epoch + 1, trainer.max_epochs or 0, trainer.max_steps
        last = epoch == total or 0 < steps <= trainer.global_step  # a step budget may end training before max_epochs
        if not self.enabled or not trainer.is_global_zero or (epoch % max(total // 10, 1) and not last):
            return
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        shown = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
        where = f"epoch {epoch}" + (f", step {trainer.global_step}/{steps}" if steps > 0 else f"/{total}")
        print(f"{type(pl_module).__name__} {where}: {shown}", file=sys.stderr, flush=True)


class SameThreads(pl.Callback):
    """Every rank runs with this process's torch threads (bpsrun.numerics): a spawned DDP rank is a fresh
    interpreter whose count depends on the environment (Lightning's share of the cores, OMP_NUM_THREADS), and the
    thread count changes the floats."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        torch.set_num_threads(self.threads)


class Trainers:
    """The `trainer` config's factory (a plain class: parts receive it at build time, outside any config)."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.eval_batch_size = int(cfg.eval_batch_size)
        self.min_samples_per_epoch = int(cfg.min_samples_per_epoch)
        self.lr_schedule: Schedule = build(cfg.lr_schedule, "trainer/lr_schedule")
        self.fit_logger: Logger | bool = False  # the round's MLflow run while a campaign trains (logging_to)

    @contextmanager
    def logging_to(self, logger: Logger) -> Iterator[None]:
        """Training inside the block logs its curves to `logger` as they happen."""
        self.fit_logger = logger
        try:
            yield
        finally:
            self.fit_logger = False

    def fit_trainer(self, **overrides) -> pl.Trainer:
        """A Trainer for training a learner: the same as `trainer`, logging to `fit_logger`."""
        return self.trainer(logger=self.fit_logger, **overrides)

    def trainer(self, **overrides) -> pl.Trainer:
        """A Trainer from `trainer.lightning`, with `overrides` (e.g. the embedding's own max_epochs)."""
        callbacks = [*overrides.pop("callbacks", []), SameThreads(torch.get_num_threads())]
        if not interactive() and overrides.get("enable_progress_bar", True):  # a log file gets lines, not frames
            callbacks.append(LineProgressBar())
        return instantiate(self.cfg.lightning, callbacks=callbacks, **overrides)
