"""What an embedding gets from the campaign. `conf/embedding/<name>.yaml` names one by `_target_`; it is built
with that file's keys and `context=EmbedContext`, and returns one vector per training-pool image."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bpsrun.data.pool import PoolStack
from bpsrun.layout import Layout
from bpsrun.model.learner import Learner
from bpsrun.model.trainers import Trainers


class EmbedContext:
    """A plain class: it is handed to `_target_`, never put into a config."""

    def __init__(
        self,
        layout: Layout,
        seed: int,
        pool_images: Callable[[int], PoolStack],
        cache_key: Callable[[], dict[str, Any]],
        shared_dir: Path,
        trainers: Trainers,
        round_learner: Callable[[int], Learner],
    ):
        self.layout = layout
        self.seed = seed
        self.pool_images = pool_images  # size -> the pool's (N_pool, 1, size, size) model input, read on demand
        self.cache_key = cache_key  # what the pool is (dataset, files, seed): embeddings are cached by it
        self.shared_dir = shared_dir  # embeddings shared by campaigns over the same pool (paths.data/embeddings)
        self.trainers = trainers
        self.round_learner = round_learner  # round -> that round's trained learner


class Embedding(Protocol):
    def embed(self, round_: int) -> np.ndarray:
        """(N_pool, D) float32 vectors for round `round_`'s selection, in training-pool order."""
        ...
