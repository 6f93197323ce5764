"""Training, evaluation and prediction with Lightning on in-memory image stacks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from bpsrun.errors import BpsrunError
from bpsrun.model.module import NucleusClassifier


class History(pl.Callback):
    """Epoch-level metrics, kept for MLflow (logged after training so a crash never leaves a half-logged run).

    An epoch's aggregated train and validation metrics are complete only once the next epoch starts (or
    training ends), so rows are taken then.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def record(self, trainer: pl.Trainer) -> None:
        row = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.rows.append({"epoch": len(self.rows), **row})

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.current_epoch > len(self.rows):
            self.record(trainer)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.record(trainer)


def build_module(model_cfg: DictConfig, num_classes: int, lr_schedule: str = "constant") -> NucleusClassifier:
    net = instantiate(model_cfg.net, num_classes=num_classes)
    return NucleusClassifier(net, instantiate(model_cfg.optimizer), num_classes=num_classes, lr_schedule=lr_schedule)


def loader(x: np.ndarray, y: np.ndarray | None, batch_size: int, min_samples: int = 0) -> DataLoader:
    """Batches in order, or (min_samples > 0) shuffled epochs of at least min_samples draws.

    Tiny labeled sets (30 images) would otherwise get a handful of optimiser steps per run: underfitting
    hurts more than overfitting in the low-label regime.
    """
    tensors = [torch.from_numpy(x).float()] + ([torch.from_numpy(y).long()] if y is not None else [])
    dataset = TensorDataset(*tensors)
    if not min_samples:
        return DataLoader(dataset, batch_size=batch_size)
    sampler = RandomSampler(dataset, num_samples=max(len(dataset), min_samples))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler)


def fit(
    cfg: DictConfig, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, seed: int, num_classes: int
) -> tuple[NucleusClassifier, list[dict[str, float]]]:
    """A freshly initialised model trained on (x, y), validated on (x_val, y_val) every epoch."""
    pl.seed_everything(seed, workers=True, verbose=False)
    module = build_module(cfg.model, num_classes, cfg.trainer.lr_schedule)
    history = History()
    trainer: pl.Trainer = instantiate(cfg.trainer.lightning, callbacks=[history])
    trainer.fit(
        module,
        loader(x, y, cfg.model.batch_size, min_samples=cfg.trainer.min_samples_per_epoch),
        loader(x_val, y_val, cfg.trainer.eval_batch_size),
    )
    return module, history.rows


@torch.no_grad()
def predict_proba(module: NucleusClassifier, x: np.ndarray, batch_size: int, desc: str = "predicting") -> np.ndarray:
    """Class probabilities in eval mode (no dropout, batch-norm running statistics), whatever mode fit left."""
    module.eval()
    return forward_proba(module, x, batch_size, desc)


@torch.no_grad()
def forward_proba(module: NucleusClassifier, x: np.ndarray, batch_size: int, desc: str) -> np.ndarray:
    """Class probabilities in the module's current mode (MC dropout sets its own)."""
    from tqdm import tqdm

    device = next(module.parameters()).device
    out = []
    for (xb,) in tqdm(loader(x, None, batch_size), desc=desc, unit="batch", leave=False):
        out.append(torch.softmax(module(xb.to(device)), dim=1).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def evaluate(probs: np.ndarray, y: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro F1 and the confusion matrix (rows: truth, columns: prediction)."""
    pred = probs.argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(confusion, (y, pred), 1)
    support = confusion.sum(axis=1)
    recall = np.divide(np.diag(confusion), support, out=np.zeros(num_classes), where=support > 0)
    precision_den = confusion.sum(axis=0)
    precision = np.divide(np.diag(confusion), precision_den, out=np.zeros(num_classes), where=precision_den > 0)
    f1_den = precision + recall
    f1 = np.divide(2 * precision * recall, f1_den, out=np.zeros(num_classes), where=f1_den > 0)
    return {
        "val_accuracy": float((pred == y).mean()),
        "val_balanced_accuracy": float(recall[support > 0].mean()),
        "val_f1": float(f1.mean()),
        "confusion": confusion.tolist(),
    }


@torch.no_grad()
def mc_dropout_proba(module: NucleusClassifier, x: np.ndarray, passes: int, batch_size: int, seed: int) -> np.ndarray:
    """T x N x C probabilities with dropout active and everything else (batch norm) in eval mode."""
    dropouts = [m for m in module.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
    if not dropouts:
        raise BpsrunError("uncertainty_bald needs a model with dropout (e.g. model=small_cnn); this one has none")
    module.eval()
    for m in dropouts:
        m.train()
    torch.manual_seed(seed)
    try:
        return np.stack(
            [forward_proba(module, x, batch_size, f"MC dropout pass {t + 1}/{passes}") for t in range(passes)]
        )
    finally:
        module.eval()
