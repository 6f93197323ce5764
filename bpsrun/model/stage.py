"""The train and predict stages: labels so far -> model.pt + metrics.json; model -> Lightly prediction files;
and full supervision (`reference.enabled`), the same training on every pool image."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from bpsrun.context import Context
from bpsrun.errors import BpsrunError
from bpsrun.export.predictions import write_predictions
from bpsrun.files import atomic_file, atomic_write_json, stable_hash
from bpsrun.lock import shared_lock
from bpsrun.model.learner import Learner
from bpsrun.reference import reference_dir
from bpsrun.tracking.runs import Tracker, summary_metrics

log = logging.getLogger("bpsrun")


def train_on(ctx: Context, files: list[str], labels: list[str], seed: int) -> tuple[Learner, dict[str, Any]]:
    """A fresh learner trained on `files`, scored on the validation set: (learner, metrics with the history)."""
    learner = ctx.learner()
    x = ctx.rows_of(learner.image_size, [ctx.pool.row_index[f] for f in files])
    y = np.array([ctx.classes.index(label) for label in labels])
    val = ctx.val_set(learner.image_size)  # None while validation labels are missing (split.require_val=false)
    history = learner.fit((x, y), val, seed=seed)
    scores = learner.evaluate(val) if val is not None else {}
    return learner, {"n_labeled": len(y), **scores, "history": history}


def score_round(ctx: Context, r: int) -> dict[str, Any]:
    """Validation metrics of round r's kept model, trained before the validation labels were all in."""
    learner = ctx.round_learner(r)
    val = ctx.val_set(learner.image_size)
    assert val is not None, "score_round needs every validation label"
    metrics = {**ctx.read_metrics(r), **learner.evaluate(val)}
    atomic_write_json(ctx.layout.metrics(r), metrics)
    log.info("round %d: validation accuracy %.3f (scored now that the validation labels are in)", r,
             metrics["val_accuracy"])  # fmt: skip
    return metrics


def train_round(ctx: Context, r: int) -> Learner:
    """Round r's model on every label of rounds 1..r (in manifest order), written with its metrics."""
    records = ctx.records_until(r)
    labels = ctx.consensus_of(records, r)
    files = sorted(labels, key=ctx.pool.row_index.__getitem__)
    log.info("round %d: training %s on %d labels", r, ctx.cfg.model.name, len(files))
    learner, scores = train_on(ctx, files, [labels[f] for f in files], seed=ctx.seed * 1000 + r)
    with atomic_file(ctx.layout.model(r)) as tmp:
        learner.save(tmp)
    # a label is one image's consensus; an annotation is one person's work (two per image with overlap)
    metrics = {"round": r, "labels_digest": stable_hash(labels), "n_annotations": len(records), **scores}
    atomic_write_json(ctx.layout.metrics(r), metrics)
    if "val_accuracy" in scores:  # the log file's record of the curve (the end table goes to stdout only)
        log.info("round %d: validation accuracy %.3f, balanced %.3f", r, scores["val_accuracy"],
                 scores["val_balanced_accuracy"])  # fmt: skip
    return learner


def check_trained_on(ctx: Context, r: int) -> None:
    """A finished round's model was trained on the labels its folder holds now: labels.json (of this or an earlier
    round) changed afterwards would leave metrics and predictions that no longer follow from the campaign's files."""
    stored = ctx.read_metrics(r).get("labels_digest")  # campaigns older than the digest have none
    if stored is not None and stored != stable_hash(ctx.labels_until(r)):
        path = ctx.layout.metrics(r)
        raise BpsrunError(
            f"{path}: round {r}'s model was trained on other labels than rounds 1-{r}'s labels.json hold now; "
            f"restore the labels, or delete {path.parent}/ (and later rounds) to train round {r} again"
        )


def predict_round(ctx: Context, r: int, learner: Learner | None) -> None:
    """Round r's model on the whole training pool, in Lightly's prediction format."""
    learner = learner or ctx.round_learner(r)
    probs = learner.predict_proba(ctx.pool_images(learner.image_size))
    files = ctx.pool.files(ctx.pool.train)
    write_predictions(ctx.layout.predictions(r), ctx.task, ctx.classes, files, probs)
    log.info("round %d: wrote %d Lightly prediction files", r, len(files))


def train_reference(ctx: Context, tracker: Tracker) -> dict[str, Any]:
    """Full supervision for this dataset, model and seed, trained once and shared by campaigns."""
    out = reference_dir(ctx.cfg)
    with shared_lock(out.with_name(f"{out.name}.lock")):  # parallel sweep jobs with the same seed wait here
        if not (out / "metrics.json").exists():
            files = ctx.pool.files(ctx.pool.train)
            log.info("full supervision: training %s on all %d pool images", ctx.cfg.model.name, len(files))
            _, scores = train_on(ctx, files, [ctx.truth[f] for f in files], seed=ctx.seed * 1000)
            atomic_write_json(out / "metrics.json", scores)
        metrics = json.loads((out / "metrics.json").read_text())
        params: dict[str, Any] = OmegaConf.to_container(ctx.cfg, resolve=True)
        tracker.log_reference(out.name, params, metrics["history"], summary_metrics(metrics))
    return metrics
