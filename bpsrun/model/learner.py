"""Learners: what trains on a round's labels and predicts the pool. `conf/model/<name>.yaml` names one by
`_target_`; it is built with that file's keys, `num_classes` and `trainers` (bpsrun.model.trainers.Trainers).

`ImageClassifier` is a LightningModule (`net` + optimiser) trained, validated and run by Lightning Trainers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from bpsrun.data.datamodule import StackDataModule
from bpsrun.errors import BpsrunError
from bpsrun.model.module import NucleusClassifier
from bpsrun.model.trainers import Trainers


class Learner(Protocol):
    image_size: int  # side of the square model input

    def fit(self, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], seed: int) -> list[dict]:
        """Train a fresh model on `train` (images, class indices), validating on `val` each epoch: the history."""
        ...

    def evaluate(self, val: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
        """val_accuracy, val_balanced_accuracy, val_f1 and the confusion matrix (rows: truth) of the model."""
        ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """N x C class probabilities (float64)."""
        ...

    def mc_proba(self, x: np.ndarray, passes: int, seed: int) -> np.ndarray:
        """T x N x C probabilities of stochastic passes (uncertainty_bald); raise BpsrunError if it has none."""
        ...

    def features(self, x: np.ndarray) -> np.ndarray:
        """N x D features of the trained model (embedding=classifier)."""
        ...

    def save(self, path: Path) -> None: ...

    def load(self, path: Path) -> None: ...


class History(pl.Callback):
    """Epoch-level metrics, kept for MLflow (logged after training so a crash never leaves a half-logged run).

    An epoch's aggregated train and validation metrics are complete only once the next epoch starts (or
    training ends), so rows are taken then.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def record(self, trainer: pl.Trainer) -> None:
        row = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.rows.append({"epoch": len(self.rows), "step": trainer.global_step, **row})

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.current_epoch > len(self.rows):
            self.record(trainer)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.record(trainer)


class ImageClassifier:
    def __init__(
        self,
        net: Callable[..., nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        image_size: int,
        batch_size: int,
        num_classes: int,
        trainers: Trainers,
    ):
        self.net, self.optimizer = net, optimizer
        self.image_size, self.batch_size, self.num_classes = int(image_size), int(batch_size), num_classes
        self.trainers = trainers
        self.module: NucleusClassifier | None = None  # set by fit or load

    def fresh(self) -> NucleusClassifier:
        net = self.net(num_classes=self.num_classes)
        return NucleusClassifier(net, self.optimizer, self.num_classes, self.trainers.lr_schedule)

    def data(self, **parts: Any) -> StackDataModule:
        t = self.trainers
        return StackDataModule(self.batch_size, t.eval_batch_size, t.min_samples_per_epoch, **parts)

    def fit(self, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], seed: int) -> list[dict]:
        pl.seed_everything(seed, workers=True, verbose=False)
        self.module = self.fresh()
        history = History()
        self.trainers.fit_trainer(callbacks=[history]).fit(self.module, datamodule=self.data(train=train, val=val))
        return history.rows

    def evaluate(self, val: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
        trainer = self.trainers.trainer(enable_progress_bar=False)
        (scores,) = trainer.validate(self.module, datamodule=self.data(val=val), verbose=False)
        return {
            "val_accuracy": round(scores["val/accuracy"], 6),
            "val_balanced_accuracy": round(scores["val/balanced_accuracy"], 6),
            "val_f1": round(scores["val/f1"], 6),
            "confusion": self.module.confusion.compute().tolist(),
        }

    def predict(self, x: np.ndarray, mode: str) -> np.ndarray:
        self.module.predict_mode = mode
        try:
            batches = self.trainers.trainer().predict(self.module, datamodule=self.data(predict=x))
        finally:
            self.module.predict_mode = "proba"
        return torch.cat(batches).numpy()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.predict(x, "proba").astype(np.float64)

    def mc_proba(self, x: np.ndarray, passes: int, seed: int) -> np.ndarray:
        """T x N x C probabilities with dropout active and everything else (batch norm) in eval mode."""
        if not any(isinstance(m, nn.Dropout) and m.p > 0 for m in self.module.modules()):
            raise BpsrunError("uncertainty_bald needs a model with dropout (e.g. model=small_cnn); this one has none")
        torch.manual_seed(seed)
        return np.stack([self.predict(x, "mc_dropout").astype(np.float64) for _ in range(passes)])

    def features(self, x: np.ndarray) -> np.ndarray:
        """Penultimate-layer features (the network's `embed`), float32."""
        return self.predict(x, "features").astype(np.float32)

    def save(self, path: Path) -> None:
        torch.save(self.module.state_dict(), path)

    def load(self, path: Path) -> None:
        self.module = self.fresh()
        self.module.load_state_dict(torch.load(path, map_location="cpu"))
        self.module.eval()
