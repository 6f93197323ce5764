"""Runs a Lightly selection config locally: numpy in, indices of the candidate pool out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bpsrun.errors import BpsrunError
from bpsrun.select.greedy import EPS, Diversity, greedy_select
from bpsrun.select.scores import SCORES


@dataclass
class SelectionInputs:
    """Everything a strategy may look at. Rows of the arrays follow `candidates`."""

    candidates: list[str]
    embeddings: np.ndarray | None = None
    labeled_embeddings: np.ndarray | None = None
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # task -> N x C probabilities
    default_seed: int = 0


def random_values(names: list[str], seed: int) -> np.ndarray:
    """A uniform value per file name, stable whatever else is in the pool: rounds consume one permutation."""
    out = np.empty(len(names))
    for i, name in enumerate(names):
        digest = hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little") / 2**64
    return out


def budget(config: dict[str, Any], pool_size: int) -> int:
    if "n_samples" in config:
        n = int(config["n_samples"])
    else:
        n = int(round(float(config["proportion_samples"]) * pool_size))
    if n < 1:
        raise BpsrunError(f"selection budget must be at least 1, got {n}; set selection.n_samples to a positive int")
    if n > pool_size:
        raise BpsrunError(
            f"selection asks for {n} samples but only {pool_size} unlabeled training images remain; "
            f"lower selection.n_samples or add images"
        )
    return n


def scalar_input(spec: dict[str, Any], inputs: SelectionInputs) -> np.ndarray:
    if spec["type"] == "RANDOM":
        return random_values(inputs.candidates, int(spec.get("random_seed", inputs.default_seed)))
    task, score = spec.get("task"), spec.get("score")
    if task not in inputs.predictions:
        known = sorted(inputs.predictions) or "none yet (round 1 has no model)"
        raise BpsrunError(f"SCORES input needs predictions for task {task!r}; available: {known}")
    if score not in SCORES:
        raise BpsrunError(f"unknown score {score!r} for task {task!r}; use one of {sorted(SCORES)}")
    return SCORES[score](inputs.predictions[task])


def select(config: dict[str, Any], inputs: SelectionInputs) -> list[int]:
    """Indices into `inputs.candidates`, in pick order."""
    n = budget(config, len(inputs.candidates))
    static_log = np.zeros(len(inputs.candidates))
    dynamic: list[Diversity] = []
    for entry in config["strategies"]:
        strategy, spec = entry["strategy"], entry["input"]
        strength = float(strategy.get("strength", 1.0))
        if strategy["type"] == "DIVERSITY":
            if inputs.embeddings is None:
                raise BpsrunError("DIVERSITY needs embeddings; set an embedding (e.g. embedding=simclr)")
            dynamic.append(
                Diversity(
                    inputs.embeddings,
                    strength=strength,
                    labeled=inputs.labeled_embeddings,
                    min_distance=strategy.get("stopping_condition_minimum_distance"),
                )
            )
        else:
            static_log += strength * np.log(np.clip(scalar_input(spec, inputs), 0, None) + EPS)
    return greedy_select(n, static_log, dynamic)
