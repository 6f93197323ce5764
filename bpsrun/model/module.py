"""The LightningModule: cross-entropy training with flips and 90-degree rotations, validation metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from bpsrun.errors import BpsrunError
from bpsrun.faults import checkpoint

LR_SCHEDULES = ("cosine", "constant")


def flip_rotate(x: torch.Tensor) -> torch.Tensor:
    """A random dihedral transform per image: nuclei have no preferred orientation."""
    k = torch.randint(0, 4, (x.shape[0],), device=x.device)
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    out = [torch.rot90(xi.flip(-1) if f else xi, int(ki), dims=(-2, -1)) for xi, ki, f in zip(x, k, flip)]
    return torch.stack(out)


class NucleusClassifier(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        num_classes: int = 2,
        lr_schedule: str = "constant",
    ):
        super().__init__()
        if lr_schedule not in LR_SCHEDULES:
            raise BpsrunError(f"trainer.lr_schedule={lr_schedule!r}: use one of {LR_SCHEDULES}")
        self.net = net
        self.optimizer_factory = optimizer
        self.lr_schedule = lr_schedule
        self.criterion = nn.CrossEntropyLoss()
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.val_bacc = MulticlassAccuracy(num_classes=num_classes, average="macro")
        self.val_f1 = MulticlassF1Score(num_classes=num_classes, average="macro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        checkpoint("training")
        x, y = batch
        loss = self.criterion(self(flip_rotate(x)), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val/loss", self.criterion(logits, y), on_epoch=True, batch_size=len(y))
        preds = logits.argmax(dim=1)
        for metric in (self.val_acc, self.val_bacc, self.val_f1):
            metric.update(preds, y)

    def on_validation_epoch_end(self) -> None:
        self.log("val/acc", self.val_acc.compute(), prog_bar=True)
        self.log("val/balanced_acc", self.val_bacc.compute())
        self.log("val/f1", self.val_f1.compute())
        for metric in (self.val_acc, self.val_bacc, self.val_f1):
            metric.reset()

    def predict_step(self, batch: torch.Tensor | tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return torch.softmax(self(x), dim=1)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        optimizer = self.optimizer_factory(self.parameters())
        if self.lr_schedule == "constant":
            return optimizer
        # cosine to zero over every optimiser step: the last epochs settle instead of ending wherever a
        # constant-rate step happened to land (final accuracy then swings by 20 points between runs)
        steps = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
