"""The LightningModule: cross-entropy training (on images with flips and 90-degree rotations, or on features as
they are), torchmetrics validation, softmax prediction (optionally with dropout active, for Monte-Carlo dropout)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from bpsrun.faults import checkpoint
from bpsrun.model.schedules import Constant, Schedule


def flip_rotate(x: torch.Tensor) -> torch.Tensor:
    """A random dihedral transform per image: nuclei have no preferred orientation."""
    k = torch.randint(0, 4, (x.shape[0],), device=x.device)
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    out = [torch.rot90(xi.flip(-1) if f else xi, int(ki), dims=(-2, -1)) for xi, ki, f in zip(x, k, flip)]
    return torch.stack(out)


def param_groups(net: nn.Module) -> list[dict[str, Any]]:
    """The net's optimiser groups if it has its own (a group's `lr_scale` multiplies the optimiser's rate, e.g. a
    pretrained backbone fine-tuned slower than its new head), else one group."""
    groups = getattr(net, "param_groups", None)
    return groups() if groups is not None else [{"params": list(net.parameters())}]


class NucleusClassifier(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        num_classes: int = 2,
        lr_schedule: Schedule | None = None,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = flip_rotate,  # None: inputs are not images
    ):
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.lr_schedule = lr_schedule or Constant()
        self.augment = augment
        self.criterion = nn.CrossEntropyLoss()
        self.val_metrics = MetricCollection(
            {
                "accuracy": MulticlassAccuracy(num_classes=num_classes, average="micro"),
                "balanced_accuracy": MulticlassAccuracy(num_classes=num_classes, average="macro"),
                "f1": MulticlassF1Score(num_classes=num_classes, average="macro"),
            },
            prefix="val/",
        )
        self.confusion = MulticlassConfusionMatrix(num_classes=num_classes)
        self.predict_mode = "proba"  # proba | mc_dropout (proba with dropout active) | features (penultimate layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        checkpoint("training")
        x, y = batch
        loss = self.criterion(self(self.augment(x) if self.augment else x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val/loss", self.criterion(logits, y), on_epoch=True, batch_size=len(y))
        preds = logits.argmax(dim=1)
        self.val_metrics.update(preds, y)
        self.confusion.update(preds, y)

    def on_validation_epoch_start(self) -> None:
        self.confusion.reset()

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.log("val/accuracy", values.pop("val/accuracy"), prog_bar=True)
        self.log_dict(values)
        self.val_metrics.reset()

    def on_predict_model_eval(self) -> None:
        """Eval mode (batch-norm running statistics); Monte-Carlo dropout keeps dropout active."""
        self.eval()
        if self.predict_mode == "mc_dropout":
            for m in self.modules():
                if isinstance(m, nn.Dropout) and m.p > 0:
                    m.train()

    def predict_step(self, batch: torch.Tensor | tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if self.predict_mode == "features":
            return self.net.embed(x).cpu()
        return torch.softmax(self(x), dim=1).cpu()

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(param_groups(self.net))
        for group in optimizer.param_groups:
            group["lr"] *= group.get("lr_scale", 1.0)
        return self.lr_schedule(optimizer, int(self.trainer.estimated_stepping_batches))
