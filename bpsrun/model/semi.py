"""model=semi and model=semi_cnn: FixMatch (Sohn et al. 2020) on the embedding's network (semi) or on small_cnn's
network from scratch (semi_cnn). Each step trains on a labeled batch and on
`mu` times as many unlabeled images of the training pool: where the model is confident about an image's weak view
(flips and 90-degree rotations), that prediction is the target for a strong view of the same image (SimCLR's
crops, turns, blur, gain and noise, bpsrun.embed.selfsup, then cutout). Validation images are never among them:
the context's `pool` gives the training pool only, and the round's labeled rows are taken out of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import CombinedLoader
from torch import nn
from torch.utils.data import DataLoader

from bpsrun.data.datamodule import Stack, StackDataModule, loader
from bpsrun.data.pool import PoolStack
from bpsrun.embed.encoder import Encoder
from bpsrun.embed.selfsup import Views, augment
from bpsrun.faults import checkpoint
from bpsrun.model.learner import ImageClassifier, Split, encoder_input, on_encoder
from bpsrun.model.module import NucleusClassifier
from bpsrun.model.schedules import Schedule
from bpsrun.model.trainers import Trainers
from bpsrun.model.unlabeled import unlabeled_images


def cutout(x: torch.Tensor, share: float) -> torch.Tensor:
    """Each image with a square of side `share` of its side, centred anywhere (it may overhang the border), set to
    0, the nucleoplasm's level: the strong view must not hinge on any one spot of the nucleus."""
    n, _, height, width = x.shape
    half = share * min(height, width) / 2
    cy, cx = torch.rand(n, 1) * height, torch.rand(n, 1) * width
    rows = ((torch.arange(height) + 0.5) - cy).abs() < half  # (n, height)
    cols = ((torch.arange(width) + 0.5) - cx).abs() < half  # (n, width)
    return x.masked_fill((rows[:, :, None] & cols[:, None, :])[:, None].to(x.device), 0.0)


@dataclass(frozen=True)
class Consistency:
    """What the unlabeled images add to the loss: weight * mean over them of mask * CE(strong view, pseudo-label)."""

    threshold: float  # a pseudo-label counts where the weak view's top probability reaches it
    weight: float  # lambda_u, against the labeled cross-entropy's 1
    views: Views  # the strong view's crops, turns, blur, gain and noise
    cutout: float  # the erased square's side, a share of the image's side
    align: bool = False  # distribution alignment of the pseudo-labels to the labels' class shares

    def strong(self, x: torch.Tensor) -> torch.Tensor:
        return cutout(augment(x, self.views), self.cutout)


def aligned(p: torch.Tensor, target: torch.Tensor, running: torch.Tensor) -> torch.Tensor:
    """Distribution alignment (ReMixMatch, Berthelot et al. 2020): each row of probabilities scaled by the target
    class shares over the model's running mean prediction, renormalised, so confident pseudo-labels cannot drift
    toward the majority class."""
    q = p * (target / running)
    return q / q.sum(dim=1, keepdim=True)


class FixMatch(NucleusClassifier):
    """NucleusClassifier whose training batches may pair labeled images with unlabeled ones (SemiData): then the
    loss adds the consistency term; plain (images, labels) batches train as NucleusClassifier does. `prior`, the
    labels' class shares, is the target of distribution alignment where the consistency asks for it."""

    momentum = 0.99  # of the running mean prediction: about the last 100 steps (a round has 600)

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        num_classes: int,
        lr_schedule: Schedule,
        consistency: Consistency,
        prior: torch.Tensor | None = None,
    ):
        super().__init__(net, optimizer, num_classes, lr_schedule)
        self.consistency = consistency
        self.prior = prior if prior is not None else torch.full((num_classes,), 1.0 / num_classes)
        self.running = self.prior.clone()  # training state only: not in the state dict, so model.pt stays a net

    def pseudo_probabilities(self, u: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(self(self.augment(u)), dim=1)
        if not self.consistency.align:
            return p
        self.running = self.running.to(p.device) * self.momentum + p.mean(dim=0) * (1 - self.momentum)
        return aligned(p, self.prior.to(p.device), self.running)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if not isinstance(batch, Mapping):
            return super().training_step(batch, batch_idx)
        checkpoint("training")
        (x, y), (u,) = batch["labeled"], batch["unlabeled"]
        c = self.consistency
        with torch.no_grad():  # targets carry no gradient; a pass without a graph is also the cheaper one
            confidence, pseudo = self.pseudo_probabilities(u).max(dim=1)
        mask = (confidence >= c.threshold).float()
        logits = self(torch.cat([self.augment(x), c.strong(u)]))  # batch norm sees labeled and unlabeled together
        labeled = self.criterion(logits[: len(y)], y)
        unlabeled = (F.cross_entropy(logits[len(y) :], pseudo, reduction="none") * mask).mean()
        loss = labeled + c.weight * unlabeled
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        parts = {"train/labeled_loss": labeled, "train/unlabeled_loss": unlabeled, "train/mask_rate": mask.mean()}
        self.log_dict(parts, on_step=False, on_epoch=True, batch_size=len(y))
        return loss


class SemiData(StackDataModule):
    """StackDataModule whose training batches, with `unlabeled` images, are {"labeled": (x, y), "unlabeled": (u,)}:
    each labeled batch (an epoch of at least min_samples draws, as for every learner) with `mu` times as many
    shuffled unlabeled images, so an epoch has the labeled loader's number of steps whatever the pool's size."""

    def __init__(self, *args: Any, unlabeled: Stack | None, mu: int, **parts: Any):
        super().__init__(*args, **parts)
        self.unlabeled, self.mu = unlabeled, mu

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        labeled = super().train_dataloader()
        if self.unlabeled is None:
            return labeled
        unlabeled = loader(self.unlabeled, None, self.mu * self.batch_size, min_samples=self.mu * len(labeled.sampler))
        return CombinedLoader({"labeled": labeled, "unlabeled": unlabeled}, mode="min_size")


class FixMatchLearner(ImageClassifier):
    """model=semi_cnn: ImageClassifier trained by FixMatch on the round's labels and the rest of the training pool
    (`pool`: size -> the training pool's images, given by the campaign's context). With fewer labeled classes than
    the task has, or no unlabeled image, it logs why and trains on the labels alone. Training stops after
    trainer.max_epochs or `max_steps` optimiser steps (None: no such limit), whichever comes first."""

    name = "semi_cnn"  # in the log's lines about the unlabeled pool

    def __init__(
        self,
        net: Callable[..., nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        image_size: int,
        batch_size: int,
        num_classes: int,
        trainers: Trainers,
        mu: int,
        threshold: float,
        lambda_u: float,
        strong: Mapping[str, Any],
        cutout: float,
        align: bool = False,
        max_steps: int | None = None,
        pool: Callable[[int], PoolStack] | None = None,
    ):
        super().__init__(net, optimizer, image_size, batch_size, num_classes, trainers)
        self.epochs = {"max_steps": int(max_steps)} if max_steps else {}  # the Trainer's limit (ImageClassifier.fit)
        self.pool, self.mu = pool, int(mu)
        self.consistency = Consistency(float(threshold), float(lambda_u), Views.of(strong), float(cutout), bool(align))
        self.unlabeled: PoolStack | None = None  # set by fit; None: supervised steps
        self.prior: torch.Tensor | None = None  # the labels' class shares, set by fit

    def fresh(self) -> FixMatch:
        t = self.trainers
        return FixMatch(self.make_net(), self.optimizer, self.num_classes, t.lr_schedule, self.consistency, self.prior)

    def data(self, **parts: Any) -> SemiData:
        t = self.trainers
        return SemiData(
            self.batch_size, t.eval_batch_size, t.min_samples_per_epoch, unlabeled=self.unlabeled, mu=self.mu, **parts
        )

    def fit(self, train: Split, val: Split | None, seed: int) -> list[dict]:
        self.unlabeled = unlabeled_images(self.name, self.pool, self.image_size, train, self.num_classes)
        counts = torch.bincount(torch.as_tensor(train[1]).long(), minlength=self.num_classes).float()
        self.prior = counts / counts.sum()
        return super().fit(train, val, seed)


class SemiSupervised(FixMatchLearner):
    """model=semi: FixMatchLearner on the embedding's network with a new head (as model=finetune). model.pt is a
    FineTuneNet's weights."""

    name = "semi"

    def __init__(
        self,
        net: Callable[..., nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        image_size: int,
        batch_size: int,
        num_classes: int,
        trainers: Trainers,
        encoder: Encoder,
        mu: int,
        threshold: float,
        lambda_u: float,
        strong: Mapping[str, Any],
        cutout: float,
        align: bool = False,
        max_steps: int | None = None,
        pool: Callable[[int], PoolStack] | None = None,
    ):
        size = encoder_input(image_size, encoder)
        super().__init__(
            net, optimizer, size, batch_size, num_classes, trainers, mu, threshold, lambda_u, strong, cutout, align,
            max_steps, pool,
        )  # fmt: skip
        self.encoder = encoder

    def make_net(self) -> nn.Module:
        return on_encoder(self.net, self.encoder, self.num_classes, self.image_size)
