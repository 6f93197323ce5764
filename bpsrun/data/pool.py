"""The manifest's rows as the campaign sees them: selection candidates (train) and the held-out validation set."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

CHUNK = 4096  # pool images per chunk when a stage runs over the whole pool (at 96 px: 72 MiB of float16)
REMAP_BYTES = 64 * 2**20  # image bytes read through one mapping of the cache file (PoolStack): a remap costs ~0.1 ms


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
    """Some rows of an image cache file (the training pool, the validation set) as model inputs at one size, read
    from the memory-mapped file when asked: rows (`stack[rows]`) or chunks in order (`chunks()`), so a stage over a
    pool of any size holds one chunk of pixels at a time. `np.asarray(stack)` reads them all.

    The file is mapped afresh after every REMAP_BYTES read: pages a mapping has touched count in the process's
    resident memory until it is unmapped, so one mapping read end to end would hold the whole cache. (They stay
    in the page cache, and the next read of them is as fast.) Pickled (DDP's spawned ranks), it is its path and rows.
    """

    def __init__(self, cache: Path, rows: list[int]):
        self.cache, self.rows = Path(cache), np.asarray(rows, dtype=np.int64)
        self.remap()
        self.row_bytes = self.mapped[0].nbytes

    def remap(self) -> None:
        self.mapped = np.load(self.cache, mmap_mode="r")
        self.read_bytes = 0  # read through this mapping

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.mapped.shape[1:])

    def __getitem__(self, index: slice | list[int] | np.ndarray) -> np.ndarray:
        rows = self.rows[index]
        nbytes = rows.size * self.row_bytes
        if self.read_bytes + nbytes > REMAP_BYTES:
            self.remap()
        self.read_bytes += nbytes
        return np.asarray(self.mapped[rows])

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        return self[:].astype(dtype) if dtype is not None else self[:]

    def __getstate__(self) -> tuple[Path, np.ndarray]:
        return self.cache, self.rows

    def __setstate__(self, state: tuple[Path, np.ndarray]) -> None:
        self.__init__(*state)

    def chunks(self, size: int | None = None) -> Iterator[np.ndarray]:
        size = size or CHUNK
        for start in range(0, len(self), size):
            yield self[start : start + size]

    def map(self, fn: Callable[[np.ndarray], np.ndarray], axis: int = 0) -> np.ndarray:
        """`fn` over the pool a chunk at a time, its results joined along `axis` (per-image outputs are small)."""
        return np.concatenate([fn(chunk) for chunk in self.chunks()], axis=axis)
