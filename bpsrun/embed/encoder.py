"""The embedding's image network, for learners that build on it (model=linear_probe, model=finetune).

An embedding that computes its vectors with a network (SimCLR; the pixels' PCA) is a `Backbone`: it gives that
network, trained once per pool and settings. Learners reach it through `Encoder`, which the campaign's context
hands to every learner whose constructor takes an `encoder` (bpsrun.plugins.build's `optional`).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from functools import cached_property
from typing import Protocol, runtime_checkable

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from bpsrun.data.datamodule import Stack, StackRows
from bpsrun.errors import BpsrunError
from bpsrun.model.gather import predict_all
from bpsrun.model.trainers import Trainers


@runtime_checkable
class Backbone(Protocol):
    image_size: int  # side of the square input the network was trained on

    def backbone(self) -> nn.Module:
        """The trained network (computed or read from the embedding's cache): images -> (N, D) features."""
        ...


class Features(pl.LightningModule):
    """A frozen network's forward pass, for Trainer.predict."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def predict_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.net(batch[0]).cpu()


def digest(image: np.ndarray) -> bytes:
    return hashlib.blake2b(image.tobytes(), digest_size=16, person=image.dtype.str.encode()).digest()


class Encoder:
    """The campaign embedding's backbone, frozen. Nothing is built or trained before first use (the context
    makes one before the pool exists), and features are computed once per image: a round's labeled and validation
    images, then the pool, are encoded by one forward pass each for the whole campaign run."""

    def __init__(self, embedding: Callable[[], object], trainers: Trainers):
        self.embedding, self.trainers = embedding, trainers
        self.cache: dict[bytes, np.ndarray] = {}

    @cached_property
    def source(self) -> Backbone:
        part = self.embedding()
        if not isinstance(part, Backbone):
            raise BpsrunError(
                f"this model builds on the embedding's network, but {type(part).__name__} has none; use an "
                f"embedding with one (embedding=simclr, classifier or pixels)"
            )
        return part

    @property
    def image_size(self) -> int:
        return int(self.source.image_size)

    @cached_property
    def net(self) -> nn.Module:
        return self.source.backbone().eval().requires_grad_(False)

    def module(self) -> nn.Module:
        """A copy of the frozen backbone (eval mode, no gradients): the caller may train its copy."""
        return copy.deepcopy(self.net)

    def encode(self, x: Stack) -> np.ndarray:
        """(N, D) float32 features of (N, 1, S, S) images, S = image_size; images seen before are not run again."""
        keys = [digest(x[i : i + 1][0]) for i in range(len(x))]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        if todo:
            loader = DataLoader(Subset(StackRows(x), todo), batch_size=self.trainers.eval_batch_size)
            feats = predict_all(self.trainers.trainer(enable_progress_bar=False), Features(self.net), loader)
            self.cache.update(zip((keys[i] for i in todo), feats.numpy().astype(np.float32)))
        return np.stack([self.cache[k] for k in keys])
