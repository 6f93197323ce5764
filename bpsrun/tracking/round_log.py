"""The log stage: a finished round's files -> its MLflow child run (params, curves, summary, figures)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bpsrun.context import Context
from bpsrun.label.jsonmin import read_labels
from bpsrun.tracking.figures import confusion_png, picks_png
from bpsrun.tracking.runs import Tracker, summary_metrics

log = logging.getLogger("bpsrun")


def open_tracker(cfg: DictConfig) -> Tracker:
    """The campaign's parent run in `tracking.uri` (one experiment per dataset)."""
    tags = {"campaign": cfg.campaign, "selection": cfg.selection.name, "seed": str(cfg.seed),
            "dataset": cfg.dataset.name, "model": cfg.model.name}  # fmt: skip
    artifacts = Path(cfg.paths.outputs) / "mlartifacts"
    return Tracker(cfg.tracking.uri, f"bpsrun-{cfg.dataset.name}", cfg.campaign, tags, artifacts)


def log_round(ctx: Context, tracker: Tracker, r: int) -> None:
    if tracker.round_logged(r):
        return
    layout = ctx.layout
    metrics = json.loads(layout.metrics(r).read_text())
    title = f"round {r}: {metrics['n_labeled']} labels"
    confusion_png(layout.confusion_png(r), metrics["confusion"], ctx.classes, title)
    labels = read_labels(layout.labels(r), ctx.classes)
    labeled = [f for f in layout.read_selected(r) if f in labels]  # labeling.partial=proceed may leave some out
    picks_png(layout.picks_png(r), [ctx.pool.path_of[f] for f in labeled], [labels[f] for f in labeled])
    params: dict[str, Any] = OmegaConf.to_container(ctx.cfg, resolve=True)
    params["selection_config"] = json.loads(layout.selection(r).read_text())
    artifacts = [layout.selected(r), layout.labels(r), layout.metrics(r), layout.confusion_png(r), layout.picks_png(r)]
    tracker.log_round(r, params, metrics["history"], summary_metrics(metrics), artifacts)
    log.info("round %d: logged to MLflow (%s)", r, ctx.cfg.tracking.uri)
