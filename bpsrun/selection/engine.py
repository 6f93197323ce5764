"""Runs a Lightly selection config locally: numpy in, indices of the candidate pool out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bpsrun.errors import BpsrunError
from bpsrun.selection.activelab import activelab
from bpsrun.selection.config import extension_entry
from bpsrun.selection.greedy import EPS, Diversity, Objective, greedy_select
from bpsrun.selection.probcover import probcover
from bpsrun.selection.scores import SCORES, bald
from bpsrun.selection.strategies import (
    Balance,
    StopBelow,
    SumStop,
    TargetRange,
    balance_targets,
    similarity,
    threshold_mask,
    typicality,
)
from bpsrun.selection.typiclust import typiclust


@dataclass
class SelectionInputs:
    """Everything a strategy may look at. Rows of the arrays follow `candidates`."""

    candidates: list[str]
    embeddings: np.ndarray | None = None
    labeled_embeddings: np.ndarray | None = None
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # task -> N x C probabilities
    mc_predictions: dict[str, np.ndarray] = field(default_factory=dict)  # task -> T x N x C dropout passes
    categories: dict[str, list[str]] = field(default_factory=dict)  # task -> class names
    metadata: dict[str, np.ndarray] = field(default_factory=dict)  # key -> one value per candidate
    tags: dict[str, np.ndarray] = field(default_factory=dict)  # tag name -> embeddings of those samples
    # ACTIVELAB only: candidates x annotators, each annotator's class index for a candidate, NaN for none (the
    # candidates then include the labeled images, which may get another annotation)
    annotations: np.ndarray | None = None
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


def predictions_for(spec: dict[str, Any], inputs: SelectionInputs) -> np.ndarray:
    task = spec.get("task")
    if task not in inputs.predictions:
        known = sorted(inputs.predictions) or "none yet (round 1 has no model)"
        raise BpsrunError(f"{spec['type']} input needs predictions for task {task!r}; available: {known}")
    return inputs.predictions[task]


def metadata_for(spec: dict[str, Any], inputs: SelectionInputs) -> np.ndarray:
    key = spec.get("key")
    if key not in inputs.metadata:
        raise BpsrunError(f"METADATA key {key!r} does not exist; available keys: {sorted(inputs.metadata)}")
    return inputs.metadata[key]


def predicted_classes(spec: dict[str, Any], inputs: SelectionInputs) -> np.ndarray:
    """Each candidate's predicted class name; with `input.categories`, classes outside them become "" (none)."""
    probs = predictions_for(spec, inputs)
    names = inputs.categories.get(spec["task"], [str(c) for c in range(probs.shape[1])])
    wanted = spec.get("categories")
    if wanted:
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise BpsrunError(f"input.categories {unknown} are not classes of task {spec['task']!r}; use {names}")
        names = [name if name in wanted else "" for name in names]
    return np.asarray(names)[probs.argmax(axis=1)]


def scalar_input(spec: dict[str, Any], inputs: SelectionInputs) -> np.ndarray:
    if spec["type"] == "RANDOM":
        return random_values(inputs.candidates, int(spec.get("random_seed", inputs.default_seed)))
    if spec["type"] == "METADATA":
        values = metadata_for(spec, inputs)
        try:
            return values.astype(np.float64)
        except ValueError:
            raise BpsrunError(f"METADATA key {spec['key']!r} is not numeric; use it with BALANCE") from None
    if spec["type"] == "PREDICTIONS":  # name CATEGORY_COUNT: objects of `categories` in the sample, 0 or 1 here
        return (predicted_classes(spec, inputs) != "").astype(np.float64)
    score = spec.get("score")
    if score == "uncertainty_bald":
        if spec.get("task") not in inputs.mc_predictions:
            raise BpsrunError(f"uncertainty_bald needs Monte-Carlo dropout predictions for task {spec.get('task')!r}")
        return bald(inputs.mc_predictions[spec["task"]])
    if score not in SCORES:
        names = sorted([*SCORES, "uncertainty_bald"])
        raise BpsrunError(f"unknown score {score!r} for task {spec.get('task')!r}; use one of {names}")
    return SCORES[score](predictions_for(spec, inputs))


def categorical_input(spec: dict[str, Any], inputs: SelectionInputs) -> np.ndarray:
    if spec["type"] == "METADATA":
        return metadata_for(spec, inputs).astype(str)
    return predicted_classes(spec, inputs)  # PREDICTIONS, name CLASS_DISTRIBUTION


def embeddings_for(inputs: SelectionInputs, kind: str) -> np.ndarray:
    if inputs.embeddings is None:
        raise BpsrunError(f"{kind} needs embeddings; set an embedding (e.g. embedding=simclr)")
    return inputs.embeddings


def query_for(spec: dict[str, Any], inputs: SelectionInputs) -> np.ndarray:
    """SIMILARITY's query set: an earlier round's picks (`tag_name: round_<k>`) or, by default, all labeled samples."""
    tag = spec.get("tag_name")
    query = inputs.tags.get(tag) if tag else inputs.labeled_embeddings
    if query is None or len(query) == 0:
        known = sorted(inputs.tags) or "none yet"
        raise BpsrunError(f"SIMILARITY needs a query set: tag_name {tag!r} has no samples; known tags: {known}")
    return query


def num_classes(strategy: dict[str, Any], inputs: SelectionInputs) -> int:
    """PROBCOVER's k-means k: its own num_classes, else the class count of the pool's one task."""
    if strategy.get("num_classes") is not None:
        return int(strategy["num_classes"])
    if len(inputs.categories) != 1:
        known = sorted(inputs.categories) or "none"
        raise BpsrunError(f"PROBCOVER needs strategy.num_classes: the task is not known (tasks: {known})")
    return len(next(iter(inputs.categories.values())))


def extension(entry: dict[str, Any], inputs: SelectionInputs, n: int) -> list[int]:
    """TYPICLUST or PROBCOVER: the whole pick list from the embeddings, labeled samples included in the pool;
    ACTIVELAB: from the predictions and the labeled candidates' annotations."""
    strategy, kind = entry["strategy"], entry["strategy"]["type"]
    if kind == "ACTIVELAB":
        if inputs.annotations is None:
            raise BpsrunError("ACTIVELAB needs the labeled images' annotations (selection/backend=local only)")
        return activelab(
            predictions_for(entry["input"], inputs), inputs.annotations, n, strategy.get("max_annotations")
        )
    x, labeled, seed = embeddings_for(inputs, kind), inputs.labeled_embeddings, inputs.default_seed
    options = {k: v for k, v in strategy.items() if k != "type" and v is not None}
    if kind == "TYPICLUST":
        return typiclust(x, labeled, n, seed=seed, **options)
    return probcover(x, labeled, n, **{**options, "num_classes": num_classes(strategy, inputs)}, seed=seed)


def select(config: dict[str, Any], inputs: SelectionInputs) -> list[int]:
    """Indices into `inputs.candidates`, in pick order. THRESHOLD filters first; the rest are one product.

    An extension strategy (TYPICLUST, PROBCOVER) is the round's only entry and produces the list itself.
    """
    n = budget(config, len(inputs.candidates))
    if (entry := extension_entry(config)) is not None:
        return extension(entry, inputs, n)
    static_log = np.zeros(len(inputs.candidates))
    available = np.ones(len(inputs.candidates), dtype=bool)
    dynamic: list[Objective] = []
    for entry in config["strategies"]:
        strategy, spec = entry["strategy"], entry["input"]
        kind, strength = strategy["type"], float(strategy.get("strength", 1.0))
        if kind == "THRESHOLD":
            available &= threshold_mask(scalar_input(spec, inputs), float(strategy["threshold"]), strategy["operation"])
        elif kind == "WEIGHTS":
            values = scalar_input(spec, inputs)
            if strategy.get("target_range"):
                bounds = strategy["target_range"]
                low, high = bounds.get("min_sum") or 0.0, bounds.get("max_sum")
                dynamic.append(TargetRange(values, low, np.inf if high is None else high, strength=strength))
            else:
                static_log += strength * np.log(np.clip(values, 0, None) + EPS)
            if strategy.get("stopping_condition_max_sum") is not None:
                dynamic.append(SumStop(values, float(strategy["stopping_condition_max_sum"])))
        elif kind == "DIVERSITY":
            x = embeddings_for(inputs, kind)
            stop = strategy.get("stopping_condition_minimum_distance")
            dynamic.append(Diversity(x, strength=strength, labeled=inputs.labeled_embeddings, min_distance=stop))
        elif kind == "TYPICALITY":
            values = typicality(embeddings_for(inputs, kind), int(strategy.get("num_nearest_neighbors") or 20))
            static_log += strength * np.log(values + EPS)
            if strategy.get("stopping_condition_minimum_typicality") is not None:
                dynamic.append(StopBelow(values, float(strategy["stopping_condition_minimum_typicality"])))
        elif kind == "SIMILARITY":
            static_log += strength * np.log(similarity(embeddings_for(inputs, kind), query_for(spec, inputs)) + EPS)
        elif kind == "BALANCE":
            values = categorical_input(spec, inputs)
            targets = balance_targets(values, strategy.get("target"), strategy.get("distribution") or "TARGET")
            dynamic.append(Balance(values, targets, n, strength=strength))
        else:
            raise BpsrunError(f"strategy type {kind!r} is not supported by the local engine")
    return greedy_select(n, static_log, dynamic, available)
