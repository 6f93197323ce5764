"""The select stage: the round's Lightly selection config and the candidates' inputs -> selection.json and
selected.txt (the picks, in order)."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from bpsrun.context import Context
from bpsrun.embed.base import Embedding
from bpsrun.errors import BpsrunError
from bpsrun.faults import checkpoint
from bpsrun.files import atomic_write_json, atomic_write_text, cached_npy
from bpsrun.label.consensus import votes
from bpsrun.selection.backend import SelectionBackend
from bpsrun.selection.config import extension_entry, round_config, validate
from bpsrun.selection.engine import SelectionInputs

log = logging.getLogger("bpsrun")

MODEL_INPUTS = {"SCORES", "PREDICTIONS"}


def requested(ctx: Context, r: int) -> dict[str, Any]:
    """Round r's Lightly selection config as the preset gives it (not yet validated)."""
    return round_config(OmegaConf.to_container(ctx.cfg.selection, resolve=True), r)


def validated(ctx: Context, r: int) -> dict[str, Any]:
    """Round r's config, validated; round 1 has no model, so no SCORES or PREDICTIONS."""
    config = requested(ctx, r)
    source = f"conf/selection/{ctx.cfg.selection.name}.yaml ({'first' if r == 1 else 'later'} rounds)"
    validate(config, source=source)
    needs_model = {s["input"]["type"] for s in config["strategies"]} & MODEL_INPUTS
    if r == 1 and needs_model:
        raise BpsrunError(
            f"{source}: {sorted(needs_model)} inputs need predictions for task {ctx.task!r}, but round 1 has "
            f"no model yet; use EMBEDDINGS or RANDOM in first_round"
        )
    return config


def finished_picks(ctx: Context, r: int) -> list[str]:
    """A finished round's picks, checked against the rest of the campaign's state; asking for another selection
    there is refused (rounds are never redone)."""
    stored = ctx.layout.read_state(ctx.layout.selection(r))
    asked = requested(ctx, r)
    if stored != asked:
        raise BpsrunError(
            f"round {r} of campaign {ctx.cfg.campaign} is finished with selection {json.dumps(stored)}; "
            f"you asked for {json.dumps(asked)}. Finished rounds are never redone: keep the "
            f"selection, or start a new campaign with campaign=<new name>"
        )
    picks = ctx.layout.read_selected(r)
    check_picks(ctx, r, picks, stored)
    return picks


def check_picks(ctx: Context, r: int, picks: list[str], config: dict[str, Any]) -> None:
    """selected.txt as the select stage wrote it: training-pool images, each once, none picked before, no more
    than the budget (a hand-edited or emptied file would silently change what the model learns from)."""
    path, pool = ctx.layout.selected(r), ctx.pool.train_index
    earlier = set(ctx.layout.labeled_before(r))
    problem = None
    if not picks:
        problem = "it is empty"
    elif len(set(picks)) != len(picks):
        problem = "it lists an image twice"
    elif unknown := [f for f in picks if f not in pool]:
        problem = f"{unknown[0]!r} is not a training-pool image of manifest.csv (validation images are never picked)"
    elif not relabels(config) and (again := [f for f in picks if f in earlier]):
        problem = f"{again[0]!r} was already picked in an earlier round"
    elif "n_samples" in config and len(picks) > int(config["n_samples"]):
        problem = f"it lists {len(picks)} images, more than the round's n_samples={config['n_samples']}"
    if problem:
        raise BpsrunError(
            f"{path}: {problem}; the file is the select stage's output and must not be edited: delete "
            f"{path.parent}/ to select round {r} again, or restore the file"
        )


def relabels(config: dict[str, Any]) -> bool:
    """Whether the round may pick labeled images again, for another annotation (ACTIVELAB)."""
    entry = extension_entry(config)
    return entry is not None and entry["strategy"]["type"] == "ACTIVELAB"


def annotation_matrix(ctx: Context, r: int, files: list[str]) -> np.ndarray:
    """files x annotators (every annotator of rounds 1..r-1): each one's class index for the file, NaN for none."""
    by_file = votes(ctx.records_until(r - 1))
    annotators = sorted({a for by in by_file.values() for a in by})
    out = np.full((len(files), len(annotators)), np.nan)
    for i, f in enumerate(files):
        for a, label in by_file.get(f, {}).items():
            out[i, annotators.index(a)] = ctx.classes.index(label)
    return out


def inputs_for(ctx: Context, r: int, config: dict[str, Any], embedding: Embedding) -> SelectionInputs:
    """What the config's strategies read, for the pool images not labeled yet (and, for ACTIVELAB, the labeled
    ones too)."""
    pool, layout = ctx.pool, ctx.layout
    earlier = layout.labeled_before(r)  # every earlier round's picks, read once
    labeled = set() if relabels(config) else set(earlier)
    candidates = [i for i in pool.train if pool.rows[i]["file"] not in labeled]
    inputs = SelectionInputs(
        candidates=pool.files(candidates),
        categories={ctx.task: ctx.classes},
        metadata={k: np.array([pool.rows[i][k] for i in candidates]) for k in pool.metadata_keys},
        default_seed=ctx.seed,
    )
    used = {s["input"]["type"] for s in config["strategies"]}
    rows = [pool.train_index[f] for f in inputs.candidates]
    if "EMBEDDINGS" in used:
        emb = embedding.embed(r)
        inputs.embeddings = emb[rows]
        labeled_rows = [pool.train_index[f] for f in earlier]
        inputs.labeled_embeddings = emb[labeled_rows] if labeled_rows else None
        inputs.tags = {f"round_{k}": emb[[pool.train_index[f] for f in layout.read_selected(k)]] for k in range(1, r)}
    if used & MODEL_INPUTS and r > 1:
        inputs.predictions[ctx.task] = ctx.previous_probs(r, inputs.candidates)
    if relabels(config):
        inputs.annotations = annotation_matrix(ctx, r, inputs.candidates)
    if r > 1 and any(s["input"].get("score") == "uncertainty_bald" for s in config["strategies"]):
        inputs.mc_predictions[ctx.task] = mc_probs(ctx, r - 1)[:, rows]
    return inputs


def mc_probs(ctx: Context, r: int) -> np.ndarray:
    """Monte-Carlo dropout probabilities (passes x pool x classes) of round r's model, computed once."""
    passes = int(ctx.cfg.selection.get("mc_passes", 10))

    def compute() -> np.ndarray:
        learner = ctx.round_learner(r)
        return learner.mc_proba(ctx.pool_images(learner.image_size), passes, seed=ctx.seed * 1000 + r)

    return cached_npy(ctx.layout.mc_probs(r), compute)


def select_round(
    ctx: Context, r: int, config: dict[str, Any], backend: SelectionBackend, embedding: Embedding
) -> list[str]:
    """Pick round r's images with `backend` and write them (selection.json first: picks imply their config)."""
    inputs = inputs_for(ctx, r, config, embedding)
    picks = backend.select(config, inputs)
    log.info("round %d: selected %d of %d candidates", r, len(picks), len(inputs.candidates))
    atomic_write_json(ctx.layout.selection(r), config)
    checkpoint("selection")
    atomic_write_text(ctx.layout.selected(r), "".join(f"{f}\n" for f in picks))
    return picks
