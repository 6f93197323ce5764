"""In-memory image stacks as a LightningDataModule: the labeled set (fit), the validation set, the pool (predict)."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset

from bpsrun.data.pool import PoolStack


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


class StackDataModule(pl.LightningDataModule):
    """(N, 1, S, S) arrays; any part may be None when the stage does not need it."""

    def __init__(
        self,
        batch_size: int,
        eval_batch_size: int,
        min_samples: int = 0,
        train: tuple[np.ndarray, np.ndarray] | None = None,
        val: tuple[np.ndarray, np.ndarray] | None = None,
        predict: np.ndarray | None = None,
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


class StackRows(Dataset):
    """The images of an (N, 1, S, S) stack (an array, or the pool read from its cache) as float32 tensors, one at a
    time when a batch asks for it: training over a pool of any size holds a batch of pixels, not the pool."""

    def __init__(self, stack: np.ndarray | PoolStack):
        self.stack = stack

    def __len__(self) -> int:
        return len(self.stack)

    def __getitem__(self, i: int) -> tuple[torch.Tensor]:
        return (torch.from_numpy(np.asarray(self.stack[i : i + 1][0], dtype=np.float32)),)
