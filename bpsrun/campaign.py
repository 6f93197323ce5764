"""Rounds and stages: what a campaign has done (its files say so) and what runs next.

Round N:  select -> label -> train -> predict -> log.  Each stage writes its output atomically into
`round_<N>/` (bpsrun.layout); a stage whose output exists is skipped, so a rerun after a crash continues where it
stopped. The stages live with the package that owns them; the parts they use are built from the config's
`_target_`s (bpsrun.plugins).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bpsrun.context import Context
from bpsrun.data.manifest import SplitSpec
from bpsrun.data.pool import Pool
from bpsrun.data.prepare import prepare, require_truth
from bpsrun.data.sources import DatasetFiles
from bpsrun.embed.base import Embedding
from bpsrun.errors import BpsrunError
from bpsrun.export.s3 import publish_campaign
from bpsrun.files import atomic_write_json
from bpsrun.identity import check_identity
from bpsrun.label.base import Labeler
from bpsrun.label.oracle import read_truth
from bpsrun.label.stage import label_round
from bpsrun.layout import Layout
from bpsrun.lock import campaign_lock
from bpsrun.model.stage import predict_round, train_reference, train_round
from bpsrun.plugins import build
from bpsrun.reference import check_truth
from bpsrun.report.campaign_table import campaign_table
from bpsrun.selection.backend import SelectionBackend
from bpsrun.selection.stage import finished_picks, select_round, validated
from bpsrun.tracking.round_log import log_round, open_tracker
from bpsrun.tracking.runs import Tracker

log = logging.getLogger("bpsrun")


class Campaign:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.layout = Layout(Path(cfg.paths.outputs) / cfg.campaign)
        self.ctx = Context(cfg, self.layout)
        self._tracker: Tracker | None = None

    def run(self) -> float:
        """Bring the campaign up to `round`; the last round's validation accuracy."""
        target = self.cfg.round
        if not isinstance(target, int) or target < 1:
            raise BpsrunError(f"round={target!r}: rounds count from 1; run e.g. `python -m bpsrun round=2`")
        root = self.layout.root
        fresh = not root.exists()
        try:
            with campaign_lock(root):
                return self.run_locked(target)
        except BpsrunError:
            if fresh and {p.name for p in root.iterdir()} <= {".lock"}:  # a start that wrote nothing
                shutil.rmtree(root)
            raise

    def run_locked(self, target: int) -> float:
        cfg, ctx, layout = self.cfg, self.ctx, self.layout
        # everything that can refuse the run does so before the first write: a misconfigured run leaves no trace
        files: DatasetFiles = build(cfg.dataset, "dataset")
        require_truth(files, cfg.labeling.name)
        labeler: Labeler = build(cfg.labeling, "labeling", context=ctx.label_context(files.truth_csv))
        identity = check_identity(cfg, layout)
        truth = read_truth(files.truth_csv, ctx.classes)
        pending = {r: validated(ctx, r) for r in range(1, target + 1) if not layout.selected(r).exists()}
        backend: SelectionBackend = build(cfg.selection.backend, "selection/backend")
        embedding: Embedding = build(cfg.embedding, "embedding", context=ctx.embed_context())
        ctx.learner()  # a model config that cannot be built is refused here, not after the first round's labels
        if cfg.reference.enabled:
            check_truth(files, truth)
        split = SplitSpec(**OmegaConf.to_container(cfg.split, resolve=True))
        ctx.truth = truth
        ctx.pool = Pool(prepare(files, split, layout.manifest, layout.metadata, truth))
        if not layout.identity.exists():
            atomic_write_json(layout.identity, identity)
        self.publish("data/", "lightly/.lightly/metadata/")
        for r in range(1, target + 1):
            self.run_round(r, pending, labeler, backend, embedding)
        reference = train_reference(ctx, self.tracker) if cfg.reference.enabled else None
        self.publish("lightly/.lightly/predictions/", round_=target)
        if self._tracker is not None:
            self._tracker.close()
        print(campaign_table(cfg.campaign, layout, target, reference), flush=True)
        return float(ctx.read_metrics(target)["val_accuracy"])

    def run_round(
        self,
        r: int,
        pending: dict[int, dict[str, Any]],
        labeler: Labeler,
        backend: SelectionBackend,
        embedding: Embedding,
    ) -> None:
        ctx, layout = self.ctx, self.layout
        if layout.selected(r).exists():
            picks = finished_picks(ctx, r)
        else:
            picks = select_round(ctx, r, pending[r], backend, embedding)
        if not layout.labels(r).exists():
            label_round(layout, r, labeler, picks, self.cfg.labeling.name)
        learner = train_round(ctx, r) if not layout.metrics(r).exists() else None
        if not (layout.predictions(r) / "tasks.json").exists():
            predict_round(ctx, r, learner)
        log_round(ctx, self.tracker, r)

    @property
    def tracker(self) -> Tracker:
        """The campaign's MLflow parent run, opened when a stage first logs."""
        if self._tracker is None:
            self._tracker = open_tracker(self.cfg)
        return self._tracker

    def publish(self, *parts: str, round_: int | None = None) -> None:
        """export.s3: the campaign as a Lightly S3 datasource (pool images, metadata, the latest predictions)."""
        spec = self.cfg.export.s3
        if not spec.bucket:
            return
        pool = self.ctx.pool
        images = {f: pool.path_of[f] for f in pool.files(pool.train)}
        publish_campaign(
            spec, images, self.layout.lightly if round_ is None else self.layout.round_lightly(round_), parts
        )
