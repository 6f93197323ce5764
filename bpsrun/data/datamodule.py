"""Image stacks as a LightningDataModule: the labeled set (fit), the validation set, the pool (predict).

Stacks are arrays or rows of the memory-mapped image cache (PoolStack), read an image at a time as batches ask
for them: a validation set or pool of any size costs a batch of float32 pixels, not a float32 copy of the stack.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from bpsrun.data.pool import PoolStack

Stack = np.ndarray | PoolStack  # (N, 1, S, S) images, or (N, D) features


class StackRows(Dataset):
    """The rows of a stack as float32 tensors, with their class index when `labels` are given."""

    def __init__(self, stack: Stack, labels: np.ndarray | None = None):
        self.stack, self.labels = stack, labels

    def __len__(self) -> int:
        return len(self.stack)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        x = torch.from_numpy(np.asarray(self.stack[i : i + 1][0], dtype=np.float32))
        return (x,) if self.labels is None else (x, torch.tensor(int(self.labels[i])))


def loader(x: Stack, y: np.ndarray | None, batch_size: int, min_samples: int = 0) -> DataLoader:
    """Batches in order, or (min_samples > 0) shuffled epochs of at least min_samples draws.

    Tiny labeled sets (30 images) would otherwise get a handful of optimiser steps per run: underfitting
    hurts more than overfitting in the low-label regime.
    """
    dataset = StackRows(x, y)
    if not min_samples:
        return DataLoader(dataset, batch_size=batch_size)
    sampler = RandomSampler(dataset, num_samples=max(len(dataset), min_samples))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler)


class StackDataModule(pl.LightningDataModule):
    """Any part may be None when the stage does not need it."""

    def __init__(
        self,
        batch_size: int,
        eval_batch_size: int,
        min_samples: int = 0,
        train: tuple[Stack, np.ndarray] | None = None,
        val: tuple[Stack, np.ndarray] | None = None,
        predict: Stack | None = None,
    ):
        super().__init__()
        self.batch_size, self.eval_batch_size, self.min_samples = batch_size, eval_batch_size, min_samples
        self.train, self.val, self.pool = train, val, predict

    def train_dataloader(self) -> DataLoader:
        return loader(*self.train, self.batch_size, min_samples=self.min_samples)

    def val_dataloader(self) -> DataLoader:
        return loader(*self.val, self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return loader(self.pool, None, self.eval_batch_size)
