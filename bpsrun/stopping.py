"""When a campaign has done enough: the `stop` config group. After each round's model has predicted the pool,
the rule says why the campaign stops there (one line) or None to go on; `round=N` then halts at that round.

Rules read only what the campaign's files hold (labels counted, validation metrics, pool predictions), so a rerun
halts at the same round.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from bpsrun.errors import BpsrunError
from bpsrun.export.predictions import read_predictions
from bpsrun.layout import Layout


class Progress(Protocol):
    num_classes: int

    def n_labeled(self, r: int) -> int: ...

    def metric(self, r: int, name: str) -> float | None:
        """Round r's validation metric `name`; None while the round has no validation metrics yet."""
        ...

    def predicted(self, r: int) -> np.ndarray:
        """Round r's predicted class index per training-pool image, in pool order."""
        ...


class StoppingRule(Protocol):
    def reason(self, progress: Progress, r: int) -> str | None:
        """Why the campaign stops after round r, or None to go on."""
        ...


class Never:
    """stop=none: run every round asked for."""

    def reason(self, progress: Progress, r: int) -> str | None:
        return None


class LabelBudget:
    """stop=budget: stop once the campaign holds `max_labels` labels."""

    def __init__(self, max_labels: int):
        self.max_labels = int(max_labels)
        if self.max_labels < 1:
            raise BpsrunError(f"stop.max_labels={max_labels}: the label budget must be a positive count")

    def reason(self, progress: Progress, r: int) -> str | None:
        n = progress.n_labeled(r)
        return f"{n} labels reach the budget stop.max_labels={self.max_labels}" if n >= self.max_labels else None


class TargetMetric:
    """stop=accuracy: stop once a validation metric reaches a target."""

    def __init__(self, target: float, metric: str = "val_accuracy"):
        self.target, self.metric = float(target), metric

    def reason(self, progress: Progress, r: int) -> str | None:
        value = progress.metric(r, self.metric)
        if value is None or value < self.target:
            return None
        return f"{self.metric} {value:.3f} reaches stop.target={self.target}"


def cohen_kappa(a: np.ndarray, b: np.ndarray, num_classes: int) -> float:
    """Agreement of two labelings beyond chance: (p_o - p_e) / (1 - p_e); 1 when both are one same constant."""
    joint = np.zeros((num_classes, num_classes))
    np.add.at(joint, (a, b), 1.0)
    joint /= len(a)
    p_o = np.trace(joint)
    p_e = float(joint.sum(axis=1) @ joint.sum(axis=0))
    return 1.0 if p_e >= 1.0 else float((p_o - p_e) / (1.0 - p_e))


class StablePredictions:
    """stop=stable (Bloodgood and Vijay-Shanker 2009): stop once the mean Cohen's kappa between consecutive
    rounds' pool predictions over the last `window` pairs reaches `threshold` (the paper: 0.99 over 3)."""

    def __init__(self, threshold: float = 0.99, window: int = 3):
        self.threshold, self.window = float(threshold), int(window)
        if not 0 < self.threshold <= 1 or self.window < 1:
            raise BpsrunError(
                f"stop.threshold={threshold}, stop.window={window}: the kappa threshold must be in (0, 1] and the "
                "window a positive number of round pairs"
            )

    def reason(self, progress: Progress, r: int) -> str | None:
        if r <= self.window:  # `window` pairs of consecutive rounds need window + 1 rounds
            return None
        pairs = range(r - self.window + 1, r + 1)
        kappas = [cohen_kappa(progress.predicted(k - 1), progress.predicted(k), progress.num_classes) for k in pairs]
        mean = float(np.mean(kappas))
        if mean < self.threshold:
            return None
        return (
            f"pool predictions are stable: mean Cohen's kappa {mean:.4f} over rounds {r - self.window}-{r} "
            f"reaches stop.threshold={self.threshold}"
        )


class CampaignProgress:
    """`Progress` read from a campaign folder's round files."""

    def __init__(self, layout: Layout, task: str, classes: list[str], pool_files: list[str]):
        self.layout, self.task, self.pool_files = layout, task, pool_files
        self.num_classes = len(classes)
        self._predicted: dict[int, np.ndarray] = {}

    def n_labeled(self, r: int) -> int:
        return int(self.layout.read_state(self.layout.metrics(r))["n_labeled"])

    def metric(self, r: int, name: str) -> float | None:
        metrics = self.layout.read_state(self.layout.metrics(r))
        if "confusion" not in metrics:  # trained before the validation labels were in (split.require_val=false)
            return None
        if name not in metrics:
            known = sorted(k for k, v in metrics.items() if isinstance(v, float))
            raise BpsrunError(f"stop.metric={name}: {self.layout.metrics(r)} has no such metric; use one of {known}")
        return float(metrics[name])

    def predicted(self, r: int) -> np.ndarray:
        if r not in self._predicted:
            probs = read_predictions(self.layout.predictions(r), self.task, self.pool_files)
            self._predicted[r] = probs.argmax(axis=1)
        return self._predicted[r]
