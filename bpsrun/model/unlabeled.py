"""The training pool's images without a label: what the learners that use the unlabeled pool (model=semi,
model=self_train) learn from. The context's `pool` gives the training pool only, so a validation image is never
among them; the round's labeled rows are taken out here."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from bpsrun.data.datamodule import Stack
from bpsrun.data.pool import PoolStack

log = logging.getLogger("bpsrun")


def unlabeled_rows(pool: PoolStack, labeled: Stack) -> PoolStack:
    """The pool's rows without the labeled ones. Images given as an array name no rows: the whole pool stays (as in
    FixMatch itself, where the labeled images are among the unlabeled ones)."""
    rows = labeled.rows if isinstance(labeled, PoolStack) else []
    return PoolStack(pool.cache, pool.rows[~np.isin(pool.rows, rows)])


def unlabeled_images(
    name: str,
    pool: Callable[[int], PoolStack] | None,
    image_size: int,
    labeled: tuple[Stack, np.ndarray],
    num_classes: int,
) -> PoolStack | None:
    """The training pool's images without a label; None, logged with the reason, where they cannot help: labels of
    fewer classes than the task has (pseudo-labels could only confirm them), or no unlabeled image left."""
    present = len(np.unique(labeled[1]))
    if present < num_classes:
        log.warning(
            "model=%s: the labels hold %d of the %d classes, so pseudo-labels could only confirm them; "
            "training on the labels alone",
            name,
            present,
            num_classes,
        )
        return None
    unlabeled = unlabeled_rows(pool(image_size), labeled[0]) if pool is not None else None
    if unlabeled is None or not len(unlabeled):
        log.info("model=%s: no unlabeled training-pool image is left; training on the labels alone", name)
        return None
    return unlabeled
