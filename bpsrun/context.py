"""What every stage of a campaign reads: the config, the folder layout, the pool, and the parts built from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from bpsrun.data.pool import Pool, PoolStack
from bpsrun.data.prepare import image_cache
from bpsrun.data.sources import dataset_identity
from bpsrun.embed.base import EmbedContext, Embedding
from bpsrun.embed.encoder import Encoder
from bpsrun.export.predictions import read_predictions
from bpsrun.label.base import LabelContext
from bpsrun.label.consensus import consensus_function
from bpsrun.label.jsonmin import read_records
from bpsrun.label.validation import read_validation
from bpsrun.layout import Layout
from bpsrun.model.learner import Learner
from bpsrun.model.trainers import Trainers
from bpsrun.plugins import build


class Context:
    """Parts are built before the prepare stage (a misconfigured run must leave no trace), so `pool` and `truth`
    are set once it has run, and parts reach them through this object's methods."""

    pool: Pool
    truth: dict[str, str]  # the dataset's ground truth ({} without one): full supervision trains on it

    def __init__(self, cfg: DictConfig, layout: Layout):
        self.cfg, self.layout = cfg, layout
        self.classes: list[str] = list(cfg.task.classes)
        self.task: str = cfg.task.name
        self.seed = int(cfg.seed)
        self.consensus = consensus_function(str(cfg.labeling.get("consensus", "majority")))
        self.trainers = Trainers(cfg.trainer)
        # the embedding's network for learners that build on it: one per run, so images are encoded once
        self.encoder = Encoder(self.embedding_part, self.trainers)

    def learner(self) -> Learner:
        """A new, untrained learner from `model` (given the encoder and the training pool's images, size ->
        PoolStack, if its constructor names them)."""
        parts = {"encoder": self.encoder, "pool": self.pool_images}
        return build(self.cfg.model, "model", parts, num_classes=len(self.classes), trainers=self.trainers)

    def embedding_part(self) -> Embedding:
        """The configured embedding, built anew (cheap: it computes nothing until asked)."""
        return build(self.cfg.embedding, "embedding", context=self.embed_context())

    def round_learner(self, r: int) -> Learner:
        learner = self.learner()
        learner.load(self.layout.model(r))
        return learner

    def rows_of(self, size: int, rows: list[int]) -> PoolStack:
        """Those manifest rows of the image cache at `size`, decoded once per size."""
        return PoolStack(image_cache(self.pool.rows, size, self.layout.image_cache(size)), rows)

    def pool_images(self, size: int) -> PoolStack:
        return self.rows_of(size, self.pool.train)

    def val_labels(self) -> dict[str, str]:
        return read_validation(self.layout, self.classes, self.seed)

    def val_missing(self) -> list[str]:
        """Validation images without a label yet (split.val_labels=labeler: the labeller's share of the work)."""
        labels = self.val_labels()
        return [f for f in self.pool.files(self.pool.val) if f not in labels]

    def val_set(self, size: int) -> tuple[PoolStack, np.ndarray] | None:
        """The validation images (read from the image cache as batches ask) and labels; None until every one is
        labeled (metrics on part of the sample would not compare across rounds)."""
        labels, val = self.val_labels(), self.pool.val
        if any(self.pool.rows[i]["file"] not in labels for i in val):
            return None
        y = np.array([self.classes.index(labels[self.pool.rows[i]["file"]]) for i in val])
        return self.rows_of(size, val), y

    def previous_probs(self, r: int, files: list[str]) -> np.ndarray | None:
        """Round r-1's predicted probabilities for `files`; None in round 1 (no model yet)."""
        if r == 1:
            return None
        return read_predictions(self.layout.predictions(r - 1), self.task, files)

    def read_metrics(self, r: int) -> dict:
        return self.layout.read_state(self.layout.metrics(r))

    def records_until(self, r: int) -> list[dict]:
        """Every annotation record of rounds 1..r, oldest first."""
        return [rec for k in range(1, r + 1) for rec in read_records(self.layout.labels(k), self.classes)]

    def labels_until(self, r: int) -> dict[str, str]:
        """Round r's training labels: the consensus of all annotations so far (one annotator: their newest)."""
        return self.consensus_of(self.records_until(r), r)

    def consensus_of(self, records: list[dict], r: int) -> dict[str, str]:
        """labeling.consensus of `records`, with the model round r selected with (majority: for ties; crowdlab:
        throughout)."""
        return self.consensus(records, self.classes, self.seed, lambda files: self.previous_probs(r, files))

    def image_path(self, file: str) -> Path:
        return self.pool.path_of[file]

    def label_context(self, truth_csv: Path | None) -> LabelContext:
        return LabelContext(
            self.cfg.campaign,
            self.classes,
            truth_csv,
            self.layout,
            self.image_path,
            self.previous_probs,
            bool(self.cfg.split.require_val),
        )

    def embedding_key(self) -> dict:
        """What the pool is, and the numerics that decide the embedding's floats: embeddings are cached by it."""
        numerics = {"threads": torch.get_num_threads(), "cpu_kernels": self.cfg.trainer.cpu_kernels}
        return {"dataset": dataset_identity(self.cfg), "pool": self.pool.files(self.pool.train), "seed": self.seed,
                "numerics": numerics}  # fmt: skip

    def embed_context(self) -> EmbedContext:
        shared = Path(self.cfg.paths.data) / "embeddings"
        return EmbedContext(
            self.layout, self.seed, self.pool_images, self.embedding_key, shared, self.trainers, self.round_learner
        )
