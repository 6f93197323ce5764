"""The campaign's MLflow runs from its files: the parent run's params, a round's start, and the log stage (a
finished round's figures, artifacts and headline metrics; its run then ends FINISHED)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bpsrun.context import Context
from bpsrun.label.agreement import agreement_metrics
from bpsrun.label.jsonmin import read_labels, read_records
from bpsrun.label.timing import labeling_metrics, seconds_cap
from bpsrun.serve.registry import log_round_model
from bpsrun.tracking.figures import confusion_png, picks_png, short
from bpsrun.tracking.runs import Tracker, summary_metrics
from bpsrun.tracking.store import SECRET

log = logging.getLogger("bpsrun")


def resolved(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)


def open_tracker(cfg: DictConfig, numerics: dict[str, Any]) -> Tracker:
    """The campaign's parent run in `tracking.uri` (one experiment per dataset), its params the whole config and
    the process's numerics (`runtime.*`: threads, kernels, CPU, BLAS)."""
    tags = {"campaign": cfg.campaign, "selection": cfg.selection.name, "seed": str(cfg.seed),
            "dataset": cfg.dataset.name, "model": cfg.model.name}  # fmt: skip
    artifacts = Path(cfg.paths.outputs) / "mlartifacts"
    tracker = Tracker(cfg.tracking.uri, f"bpsrun-{cfg.dataset.name}", cfg.campaign, tags, artifacts)
    params = {k: v for k, v in resolved(cfg).items() if k != "round"}  # the target round changes from run to run
    params["runtime"] = numerics
    tracker.open(params)
    return tracker


def start_round(ctx: Context, tracker: Tracker, r: int, numerics: dict[str, Any]) -> None:
    tracker.start_round(r, {**resolved(ctx.cfg), "round": r, "runtime": numerics})  # the round this run is


def without_secrets(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: without_secrets(v) for k, v in data.items() if not SECRET.search(str(k))}
    if isinstance(data, list):
        return [without_secrets(v) for v in data]
    return data


def captions(ctx: Context, r: int, files: list[str], labels: dict[str, str]) -> list[str]:
    """File name, label, and what the previous round's model predicted for the pick (round 1 had no model)."""
    probs = ctx.previous_probs(r, files)
    out = []
    for k, f in enumerate(files):
        seen = "no model yet" if probs is None else f"pred {ctx.classes[probs[k].argmax()]} {probs[k].max():.2f}"
        out.append(f"{short(f)}\nlabel {labels[f]}\n{seen}")
    return out


def log_round(ctx: Context, tracker: Tracker, r: int) -> None:
    layout = ctx.layout
    metrics = ctx.read_metrics(r)
    files = [layout.selected(r), layout.labels(r), layout.metrics(r), layout.picks_png(r)]
    if "confusion" in metrics:
        files.append(write_confusion(ctx, r, metrics))
    else:  # trained before the validation labels were in
        missing = len(ctx.val_missing())
        tracker.note_validation(r, f"missing: {missing} of {len(ctx.pool.val)} validation images unlabeled")
    labels = read_labels(layout.labels(r), ctx.classes)
    labeled = [f for f in layout.read_selected(r) if f in labels]  # labeling.partial=proceed may leave some out
    picks_png(layout.picks_png(r), [ctx.pool.path_of[f] for f in labeled], captions(ctx, r, labeled, labels))
    selection = layout.read_state(layout.selection(r))
    tracker.log_params(r, {"n_labeled": metrics["n_labeled"], "selection_config": selection})
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(OmegaConf.to_yaml(OmegaConf.create(without_secrets(resolved(ctx.cfg)))))
        archive = shutil.make_archive(str(Path(tmp) / "predictions"), "zip", layout.round_lightly(r))
        if ctx.cfg.tracking.get("log_model", True):  # the round's model, registered (bpsrun.serve)
            log_round_model(ctx, tracker, r, config)
        tracker.finish_round(r, metrics["n_labeled"], summary_metrics(metrics), [*files, config, Path(archive)])
    log_labeling(ctx, tracker, r, metrics)
    log.info("round %d: logged to MLflow (%s)", r, ctx.cfg.tracking.uri)


def round_labeling(ctx: Context, records: list[dict[str, Any]]) -> dict[str, float]:
    return labeling_metrics(records, seconds_cap(ctx.cfg))


def log_labeling(ctx: Context, tracker: Tracker, r: int, metrics: dict[str, Any]) -> None:
    """The round's labeling/* and agreement/* metrics, and the parent's accuracy curve stepped by cumulative
    labeling seconds (only once some time is known: an unknown time is not 0)."""
    records = read_records(ctx.layout.labels(r), ctx.classes)
    labeling = round_labeling(ctx, records)
    tracker.log_metrics(r, {**labeling, **agreement_metrics(records, ctx.labels_until(r), ctx.classes, r)})
    if "labeling/seconds" in labeling and "val_accuracy" in metrics:
        earlier = (round_labeling(ctx, read_records(ctx.layout.labels(k), ctx.classes)) for k in range(1, r))
        seconds = labeling["labeling/seconds"] + sum(m.get("labeling/seconds", 0.0) for m in earlier)
        tracker.log_parent_point("val/accuracy_by_labeling_seconds", float(metrics["val_accuracy"]), int(seconds))


def log_late_scores(ctx: Context, tracker: Tracker, r: int, metrics: dict[str, Any]) -> None:
    """A round scored after it was logged: its metrics, metrics.json and confusion matrix go to its run."""
    artifacts = [ctx.layout.metrics(r), write_confusion(ctx, r, metrics)]
    tracker.log_late_scores(r, metrics["n_labeled"], summary_metrics(metrics), artifacts)


def write_confusion(ctx: Context, r: int, metrics: dict[str, Any]) -> Path:
    path = ctx.layout.confusion_png(r)
    confusion_png(path, metrics["confusion"], ctx.classes, f"round {r}: {metrics['n_labeled']} labels")
    return path
