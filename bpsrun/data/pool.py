"""The manifest's rows as the campaign sees them: selection candidates (train) and the held-out validation set."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

CHUNK = 4096  # pool images per chunk when a stage runs over the whole pool (at 96 px: 72 MiB of float16)


@dataclass
class Pool:
    rows: list[dict[str, str]]

    @cached_property
    def train(self) -> list[int]:
        return [i for i, r in enumerate(self.rows) if r["split"] == "train"]

    @cached_property
    def val(self) -> list[int]:
        return [i for i, r in enumerate(self.rows) if r["split"] == "val"]

    def files(self, idx: list[int]) -> list[str]:
        return [self.rows[i]["file"] for i in idx]

    @cached_property
    def path_of(self) -> dict[str, Path]:
        """Manifest file name -> image path."""
        return {r["file"]: Path(r["path"]) for r in self.rows}

    @cached_property
    def row_index(self) -> dict[str, int]:
        """Manifest file name -> row (the image stacks' order)."""
        return {row["file"]: i for i, row in enumerate(self.rows)}

    @cached_property
    def train_index(self) -> dict[str, int]:
        """Training-pool file name -> position among the training rows (pool embeddings' order)."""
        return {self.rows[i]["file"]: k for k, i in enumerate(self.train)}

    @property
    def metadata_keys(self) -> list[str]:
        return [k for k in self.rows[0] if k not in ("file", "path", "split")]


class PoolStack:
    """The training pool's model inputs at one size, read from the memory-mapped image cache when asked: rows
    (`stack[rows]`) or chunks in pool order (`chunks()`), so a stage over a pool of any size holds one chunk of
    pixels at a time. `np.asarray(stack)` reads the whole pool (training needs random access to it)."""

    def __init__(self, images: np.ndarray, rows: list[int]):
        self.images, self.rows = images, np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.images.shape[1:])

    def __getitem__(self, index: slice | list[int] | np.ndarray) -> np.ndarray:
        return np.asarray(self.images[self.rows[index]])

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        return self[:].astype(dtype) if dtype is not None else self[:]

    def chunks(self, size: int | None = None) -> Iterator[np.ndarray]:
        size = size or CHUNK
        for start in range(0, len(self), size):
            yield self[start : start + size]

    def map(self, fn: Callable[[np.ndarray], np.ndarray], axis: int = 0) -> np.ndarray:
        """`fn` over the pool a chunk at a time, its results joined along `axis` (per-image outputs are small)."""
        return np.concatenate([fn(chunk) for chunk in self.chunks()], axis=axis)
