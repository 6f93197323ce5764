"""Self-supervised embeddings of the pool: SimCLR (lightly's NT-Xent loss and projection head) on a small CNN.

Views are made on 16-bit-normalised tensors (lightly's PIL transforms would clip 16-bit data): random resized
crops, flips, 90-degree rotations, intensity scaling and Gaussian noise. No labels are used.
"""

from __future__ import annotations

import logging

import numpy as np
import pytorch_lightning as pl
import torch
from lightly.loss import NTXentLoss
from lightly.models.modules.heads import SimCLRProjectionHead
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import v2

from bpsrun.embed.base import EmbedContext
from bpsrun.faults import checkpoint
from bpsrun.files import cached_npy, stable_hash
from bpsrun.lock import shared_lock
from bpsrun.model.module import flip_rotate
from bpsrun.model.networks import SmallConvNet
from bpsrun.model.trainers import Trainers

log = logging.getLogger("bpsrun")


def make_view_transform(size: int) -> nn.Module:
    return v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True)


def augment(x: torch.Tensor, crop: nn.Module) -> torch.Tensor:
    views = torch.stack([crop(xi) for xi in x])
    views = flip_rotate(views)
    gain = torch.empty(len(x), 1, 1, 1).uniform_(0.7, 1.3)
    return views * gain + 0.05 * torch.randn_like(views)


class SimCLR(pl.LightningModule):
    def __init__(self, width: int, dim: int, temperature: float, lr: float, size: int):
        super().__init__()
        self.backbone = SmallConvNet(in_channels=1, width=width).features
        feat = 4 * width
        self.head = SimCLRProjectionHead(input_dim=feat, hidden_dim=feat, output_dim=dim)
        self.criterion = NTXentLoss(temperature=temperature)
        self.crop = make_view_transform(size)
        self.lr = lr

    def training_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> torch.Tensor:
        checkpoint("embedding")
        (x,) = batch
        z0 = self.head(self.backbone(augment(x, self.crop)))
        z1 = self.head(self.backbone(augment(x, self.crop)))
        loss = self.criterion(z0, z1)
        self.log("ssl/loss", loss, on_epoch=True, on_step=False, prog_bar=True)
        return loss

    def predict_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.backbone(batch[0]).cpu()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=1e-4)


def embed_simclr(
    images: np.ndarray,
    trainers: Trainers,
    *,
    seed: int,
    epochs: int = 30,
    batch_size: int = 128,
    width: int = 16,
    dim: int = 64,
    temperature: float = 0.5,
    lr: float = 2e-3,
) -> np.ndarray:
    """Train SimCLR on `images` (N, 1, S, S) and return backbone features (N, 4 * width), float32."""
    pl.seed_everything(seed, workers=True, verbose=False)
    x = torch.from_numpy(images).float()
    model = SimCLR(width, dim, temperature, lr, images.shape[-1])
    loader = DataLoader(
        TensorDataset(x), batch_size=min(batch_size, len(x)), shuffle=True, drop_last=len(x) > batch_size
    )
    trainers.trainer(max_epochs=epochs).fit(model, loader)
    feats = trainers.trainer().predict(model, DataLoader(TensorDataset(x), batch_size=512))
    return torch.cat(feats).numpy().astype(np.float32)


class SimCLREmbedding:
    """embedding=simclr: computed once per pool, seed and settings, shared by campaigns.

    The embedding uses no labels, so campaigns that differ only in strategy share it: the first computes it into
    `paths.data/embeddings/` (under a lock, for parallel sweep jobs) and each campaign keeps its own copy.
    """

    def __init__(self, context: EmbedContext, image_size: int, **settings: float):
        self.context, self.image_size, self.settings = context, int(image_size), settings

    def embed(self, round_: int) -> np.ndarray:
        ctx = self.context
        key = {**ctx.cache_key(), "embedding": {"image_size": self.image_size, **self.settings}}
        shared = ctx.shared_dir / f"simclr-{stable_hash(key)}.npy"

        def compute() -> np.ndarray:
            stack = ctx.pool_images(self.image_size)
            log.info("embedding %d pool images with SimCLR (once per pool and seed)", len(stack))
            return embed_simclr(stack, ctx.trainers, seed=ctx.seed, **self.settings)

        def from_shared() -> np.ndarray:
            with shared_lock(shared.with_suffix(".lock")):
                return cached_npy(shared, compute)

        return cached_npy(ctx.layout.ssl_embeddings, from_shared)
