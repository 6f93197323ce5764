"""The embedding-quality gate of a round: printed and logged once its labels are in, before its model trains."""

from __future__ import annotations

import logging

import numpy as np

from bpsrun.context import Context
from bpsrun.embed.base import Embedding
from bpsrun.embed.quality import MIN_LABELS, check_embedding
from bpsrun.tracking.runs import Tracker

log = logging.getLogger("bpsrun")

PIXELS_SIZE = 24  # raw-pixel baseline: images downsampled to this side


def embedding_gate(ctx: Context, tracker: Tracker, r: int, embedding: Embedding) -> None:
    labels = ctx.labels_until(r)
    files = sorted(labels, key=ctx.pool.train_index.__getitem__)
    y = np.array([labels[f] for f in files])
    if len(files) < MIN_LABELS or len(set(y)) < 2:
        log.info("round %d: embedding check waits for %d labels of two classes or more", r, MIN_LABELS)
        return
    rows = [ctx.pool.train_index[f] for f in files]
    pixels = ctx.pool_images(PIXELS_SIZE)[rows]
    check = check_embedding(embedding.embed(r)[rows], pixels, y)
    tracker.log_metrics(r, check.metrics())
    if check.near_chance:
        log.warning(
            "round %d: embedding check: %s: its neighbours agree with the labels no better than chance, so "
            "embedding-based selection (diversity, typicality, coverage) cannot help on this data",
            r, check.summary(),
        )  # fmt: skip
    elif check.loses_to_pixels:
        log.warning(
            "round %d: embedding check: %s: the embedding loses to raw pixels; selecting on it is not worth it",
            r, check.summary(),
        )  # fmt: skip
    else:
        log.info("round %d: embedding check: %s", r, check.summary())
