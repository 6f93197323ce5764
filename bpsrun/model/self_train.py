"""model=self_train: self-training (pseudo-labels, Lee 2013) of a network trained from scratch. A teacher trains on
the round's labels and predicts the training pool's unlabeled images (bpsrun.model.unlabeled: never a validation
image); where it is confident, its prediction becomes a label, at most `per_label` pseudo-labels for each real one
of that class; a fresh student trains on both and is the round's model. The teacher runs no validation loop: the
validation set only ever scores the student.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from bpsrun.data.datamodule import Stack
from bpsrun.data.pool import PoolStack
from bpsrun.model.learner import ImageClassifier, Split
from bpsrun.model.trainers import Trainers
from bpsrun.model.unlabeled import unlabeled_images

log = logging.getLogger("bpsrun")


def confident(proba: np.ndarray, quota: np.ndarray, threshold: float) -> np.ndarray:
    """Positions of the pseudo-labeled images, ascending: for each class c, at most quota[c] of the images whose
    top class is c with a probability of at least `threshold`, the most probable first (ties: the lower position).
    A quota per class keeps the labels' class balance: the easiest class would otherwise take every place."""
    top, conf = proba.argmax(axis=1), proba.max(axis=1)
    picked = []
    for c, k in enumerate(quota):
        candidates = np.flatnonzero((top == c) & (conf >= threshold))
        picked.append(candidates[np.argsort(-conf[candidates], kind="stable")[:k]])
    return np.sort(np.concatenate(picked))


def joined(labeled: Stack, unlabeled: PoolStack, picked: np.ndarray) -> Stack:
    """The labeled images followed by the picked unlabeled ones: rows of the one image cache where both are, an
    array otherwise."""
    if isinstance(labeled, PoolStack) and labeled.cache == unlabeled.cache:
        return PoolStack(labeled.cache, np.concatenate([labeled.rows, unlabeled.rows[picked]]))
    return np.concatenate([np.asarray(labeled, dtype=np.float32), unlabeled[picked].astype(np.float32)])


class SelfTrained(ImageClassifier):
    """ImageClassifier trained twice a round: teacher on the labels, student on the labels and the teacher's
    confident pseudo-labels of the unlabeled pool (`pool`: size -> the training pool's images, from the campaign's
    context). With fewer labeled classes than the task has, or no unlabeled image, it logs why and trains once on
    the labels. model.pt is the student's weights."""

    def __init__(
        self,
        net: Callable[..., nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        image_size: int,
        batch_size: int,
        num_classes: int,
        trainers: Trainers,
        threshold: float,
        per_label: float,
        pool: Callable[[int], PoolStack] | None = None,
    ):
        super().__init__(net, optimizer, image_size, batch_size, num_classes, trainers)
        self.threshold, self.per_label, self.pool = float(threshold), float(per_label), pool
        self.pseudo: tuple[np.ndarray, np.ndarray] | None = None  # set by fit: the pseudo-labeled rows, classes

    def fit(self, train: Split, val: Split | None, seed: int) -> list[dict]:
        self.pseudo = None
        unlabeled = unlabeled_images("self_train", self.pool, self.image_size, train, self.num_classes)
        if unlabeled is None:
            return super().fit(train, val, seed)
        super().fit(train, None, seed)  # the teacher
        proba = self.predict_proba(unlabeled)
        quota = np.ceil(self.per_label * np.bincount(train[1], minlength=self.num_classes)).astype(int)
        picked = confident(proba, quota, self.threshold)
        classes = proba[picked].argmax(axis=1)
        self.pseudo = unlabeled.rows[picked], classes
        log.info(
            "model=self_train: %d pseudo-labels of %d unlabeled pool images (per class %s, threshold %.2f)",
            len(picked),
            len(unlabeled),
            np.bincount(classes, minlength=self.num_classes).tolist(),
            self.threshold,
        )
        student = (joined(train[0], unlabeled, picked), np.concatenate([train[1], classes]))
        return super().fit(student, val, seed)
