"""The manifest's rows as the campaign sees them: selection candidates (train) and the held-out validation set."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path


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
