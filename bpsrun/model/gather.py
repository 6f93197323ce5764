"""Predictions of a whole dataset, complete and in order, from one process or several (DDP).

`trainer.predict` returns the batches of the process it runs in: under DDP each rank predicts its own shard
(Lightning's prediction sampler deals sample i to rank i mod world size), and with `start_method: spawn` the
calling process predicts nothing at all. `predict_all` has every rank write its shard with the samples' indices
(`ShardWriter`), then merges the shards in the calling process by index, keeping one row per sample.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader

from bpsrun.errors import BpsrunError


class ShardWriter(BasePredictionWriter):
    """Each rank's predictions and their sample indices, `<folder>/rank<R>.pt`, written once its epoch ends."""

    def __init__(self, folder: Path):
        super().__init__(write_interval="epoch")
        self.folder = folder

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        (batches,) = batch_indices  # one dataloader: batches x sample indices
        index = torch.tensor([i for batch in batches for i in batch], dtype=torch.long)
        shard = {"index": index, "values": torch.cat(list(predictions))}
        torch.save(shard, self.folder / f"rank{trainer.global_rank}.pt")


def predict_all(
    trainer: pl.Trainer, module: pl.LightningModule, data: DataLoader | pl.LightningDataModule
) -> torch.Tensor:
    """`module`'s predictions (tensors, one row per sample) of every sample of `data` (a DataLoader, or a
    DataModule's predict_dataloader), in the dataset's order, however many processes `trainer` runs."""
    loader = data.predict_dataloader() if isinstance(data, pl.LightningDataModule) else data
    if trainer.world_size == 1:  # the batches come back in order, from this process
        return torch.cat(trainer.predict(module, loader))
    with tempfile.TemporaryDirectory(prefix="bpsrun-predict-") as tmp:
        writer = ShardWriter(Path(tmp))
        trainer.callbacks.append(writer)
        try:
            trainer.predict(module, loader, return_predictions=False)
        finally:
            trainer.callbacks.remove(writer)
        return merge(Path(tmp), trainer.world_size, len(loader.dataset))


def merge(folder: Path, world_size: int, n: int) -> torch.Tensor:
    """The ranks' shards in `folder` as one tensor ordered by sample index 0..n-1, each sample once."""
    shards = []
    for rank in range(world_size):
        path = folder / f"rank{rank}.pt"
        if not path.exists():
            raise BpsrunError(f"prediction with {world_size} processes: rank {rank} wrote no predictions")
        shards.append(torch.load(path, weights_only=True))
    index = torch.cat([s["index"] for s in shards])
    values = torch.cat([s["values"] for s in shards])
    order = torch.argsort(index, stable=True)
    index, values = index[order], values[order]
    first = torch.ones_like(index, dtype=torch.bool)
    first[1:] = index[1:] != index[:-1]  # a sampler that pads to equal shards repeats samples: keep one of each
    index, values = index[first], values[first]
    if not torch.equal(index, torch.arange(n)):
        raise BpsrunError(
            f"prediction with {world_size} processes covered {len(index)} of {n} samples; "
            f"predict on one device (trainer.devices=1)"
        )
    return values
