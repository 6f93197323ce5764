"""Parts a user might add, each a class here plus a YAML in tests/toy_conf/: nothing else in bpsrun changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bpsrun.data.datamodule import Stack
from bpsrun.errors import BpsrunError
from bpsrun.label.base import LabelContext
from bpsrun.label.jsonmin import record
from bpsrun.label.oracle import read_truth


class NearestMean:
    """A learner without torch: each class's mean image; probabilities from softmax of negative distances."""

    def __init__(self, image_size: int, num_classes: int, trainers: Any, temperature: float = 1.0):
        self.image_size, self.num_classes, self.temperature = int(image_size), num_classes, temperature
        self.means: np.ndarray | None = None

    def fit(self, train: tuple[Stack, np.ndarray], val: tuple[Stack, np.ndarray] | None, seed: int) -> list:
        x, y = np.asarray(train[0]).reshape(len(train[0]), -1).astype(np.float64), train[1]
        self.means = np.stack([x[y == c].mean(axis=0) if (y == c).any() else x.mean(axis=0) for c in range(2)])
        scores = {} if val is None else {"val/accuracy": self.evaluate(val)["val_accuracy"]}
        return [{"epoch": 0, "step": 0, **scores}]

    def predict_proba(self, x: Stack) -> np.ndarray:
        d = ((np.asarray(x).reshape(len(x), 1, -1).astype(np.float64) - self.means[None]) ** 2).mean(axis=2)
        z = np.exp(-(d - d.min(axis=1, keepdims=True)) / self.temperature)
        return z / z.sum(axis=1, keepdims=True)

    def evaluate(self, val: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
        pred, y = self.predict_proba(val[0]).argmax(axis=1), val[1]
        confusion = [[int(((y == i) & (pred == j)).sum()) for j in range(2)] for i in range(2)]
        recall = [confusion[i][i] / max(sum(confusion[i]), 1) for i in range(2)]
        acc = float((pred == y).mean())
        return {"val_accuracy": acc, "val_balanced_accuracy": sum(recall) / 2, "val_f1": acc, "confusion": confusion}

    def mc_proba(self, x: np.ndarray, passes: int, seed: int) -> np.ndarray:
        raise BpsrunError("NearestMean is deterministic: no Monte-Carlo passes")

    def features(self, x: Stack) -> np.ndarray:
        return np.asarray(x).reshape(len(x), -1).astype(np.float32)

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.save(f, self.means)

    def load(self, path: Path) -> None:
        self.means = np.load(path)


class FirstHalfLabeler:
    """Labels only the first half of each round's picks (as a labeller who stopped early), from ground truth."""

    def __init__(self, context: LabelContext, annotator: str):
        self.truth = read_truth(context.truth_csv, context.classes)
        self.annotator = annotator

    def label(self, round_: int, files: list[str], validation: list[str]) -> list[dict[str, Any]]:
        half = files[: len(files) // 2] + validation
        return [record(i, f, f, self.truth[f], self.annotator) for i, f in enumerate(half, start=1)]
