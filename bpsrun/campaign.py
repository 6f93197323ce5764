"""Rounds and stages: what a campaign has done (its files say so) and what runs next.

Round N:  select -> label -> train -> predict -> log.  Each stage writes its output atomically into
`round_<N>/` (bpsrun.layout); a stage whose output exists is skipped, so a rerun after a crash continues where it
stopped. The stages live with the package that owns them; the parts they use are built from the config's
`_target_`s (bpsrun.plugins).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from bpsrun.checks import check_config
from bpsrun.context import Context
from bpsrun.data.manifest import SplitSpec
from bpsrun.data.pool import Pool
from bpsrun.data.prepare import prepare
from bpsrun.data.sources import DatasetFiles
from bpsrun.embed.base import Embedding
from bpsrun.embed.gate import embedding_gate
from bpsrun.errors import AwaitingLabels, BpsrunError
from bpsrun.export.s3 import publish_campaign
from bpsrun.files import atomic_write_json
from bpsrun.identity import check_identity
from bpsrun.label.base import Labeler
from bpsrun.label.oracle import read_truth
from bpsrun.label.stage import check_labels, check_validation, gather_validation, label_round
from bpsrun.label.timing import seconds_cap
from bpsrun.label.validation import keep_validation, truth_records, val_source
from bpsrun.layout import Layout
from bpsrun.lock import campaign_lock
from bpsrun.model.stage import check_trained_on, predict_round, score_round, train_reference, train_round
from bpsrun.numerics import configure, differences, runtime
from bpsrun.plugins import build
from bpsrun.reference import check_truth
from bpsrun.report.campaign_table import campaign_table
from bpsrun.selection.backend import SelectionBackend
from bpsrun.selection.stage import finished_picks, select_round, validated
from bpsrun.signals import sigterm_exits
from bpsrun.stopping import CampaignProgress, StoppingRule
from bpsrun.tracking.round_log import log_late_scores, log_round, open_tracker, start_round
from bpsrun.tracking.runs import Tracker

log = logging.getLogger("bpsrun")


class Campaign:
    def __init__(self, cfg: DictConfig):
        check_config(cfg)  # every value refused in one line before anything is written
        configure(cfg)  # threads and CPU kernels, before this process's first torch kernel
        self.cfg = cfg
        self.layout = Layout(Path(cfg.paths.outputs) / cfg.campaign)
        self.ctx = Context(cfg, self.layout)
        self._tracker: Tracker | None = None

    def run(self) -> float:
        """Bring the campaign up to `round`; the last round's validation accuracy."""
        target = self.cfg.round
        root = self.layout.root
        fresh = not root.exists()
        try:
            with sigterm_exits(), campaign_lock(root):
                return self.run_locked(target)
        except BaseException as exc:
            if self._tracker is not None:  # the runs say how it ended: waiting for people, stopped, or failed
                self._tracker.end(end_status(exc))
            if isinstance(exc, BpsrunError) and fresh and {p.name for p in root.iterdir()} <= {".lock"}:
                shutil.rmtree(root)  # a start that wrote nothing
            raise

    def run_locked(self, target: int) -> float:
        cfg, ctx, layout = self.cfg, self.ctx, self.layout
        # everything that can refuse the run does so before the first write: a misconfigured run leaves no trace
        files: DatasetFiles = build(cfg.dataset, "dataset")
        validated_by = val_source(cfg.split.val_labels, files.truth_csv)
        labeler: Labeler = build(cfg.labeling, "labeling", context=ctx.label_context(files.truth_csv))
        identity = check_identity(cfg, layout)
        truth = read_truth(files.truth_csv, ctx.classes) if files.truth_csv is not None else {}
        pending = {r: validated(ctx, r) for r in range(1, target + 1) if not layout.selected(r).exists()}
        backend: SelectionBackend = build(cfg.selection.backend, "selection/backend")
        embedding: Embedding = ctx.embedding_part()
        ctx.learner()  # a model config that cannot be built is refused here, not after the first round's labels
        stop: StoppingRule = build(cfg.stop, "stop")
        if cfg.reference.enabled:
            check_truth(files, truth)
        split = SplitSpec(**{k: cfg.split[k] for k in ("val_size", "group_by", "stratify_by", "seed")})
        ctx.truth = truth
        val_truth = truth if validated_by == "truth" else None
        ctx.pool = Pool(prepare(files, split, layout.manifest, layout.metadata, val_truth))
        if val_truth is not None:  # the truth file labels validation: recorded once, as a labeler's would be
            keep_validation(layout, truth_records(ctx.val_missing(), val_truth))
        self.runtime = runtime(cfg.trainer.cpu_kernels)
        self.note_runtime_change(target)
        self._tracker = open_tracker(cfg, self.runtime)  # the inputs are sound: the campaign's run is live from here
        if not layout.identity.exists():
            atomic_write_json(layout.identity, identity)
        self.publish("data/", "lightly/.lightly/metadata/")
        last = self.run_rounds(target, pending, labeler, backend, embedding, stop)
        reference = train_reference(ctx, self.tracker) if cfg.reference.enabled and not ctx.val_missing() else None
        self.publish("lightly/.lightly/predictions/", round_=last)
        self.tracker.end("FINISHED")
        print(campaign_table(cfg.campaign, layout, last, reference, seconds_cap(cfg)), flush=True)
        log.info("MLflow runs of this campaign: %s", self.tracker.runs_link())
        return float(ctx.read_metrics(last).get("val_accuracy", "nan"))  # nan: validation labels still missing

    def run_rounds(self, target: int, pending: dict[int, dict[str, Any]], labeler: Labeler,
                   backend: SelectionBackend, embedding: Embedding, stop: StoppingRule) -> int:  # fmt: skip
        """Rounds 1..target, halting where `stop` says: the last round run."""
        ctx = self.ctx
        progress = CampaignProgress(self.layout, ctx.task, ctx.classes, ctx.pool.files(ctx.pool.train))
        unscored = self.unscored(target)
        if unscored:  # rounds trained before the validation labels were in: have they arrived since?
            gather_validation(ctx, labeler, unscored[-1])
        for r in range(1, target + 1):
            self.run_round(r, pending, labeler, backend, embedding)
            self.score_late(r)
            reason = stop.reason(progress, r)
            if reason is not None:
                print(f"bpsrun: stopping after round {r} (stop={self.cfg.stop.name}): {reason}", flush=True)
                self.tracker.note_stop(r, reason)
                return r
        return target

    def run_round(
        self,
        r: int,
        pending: dict[int, dict[str, Any]],
        labeler: Labeler,
        backend: SelectionBackend,
        embedding: Embedding,
    ) -> None:
        ctx, layout, tracker = self.ctx, self.layout, self.tracker
        picks = finished_picks(ctx, r) if layout.selected(r).exists() else None
        if layout.labels(r).exists() and picks is not None:
            check_labels(layout, r, picks, ctx.classes)
        if layout.metrics(r).exists():  # also a damaged metrics.json stops the run before later rounds' work
            check_trained_on(ctx, r)
        if picks is not None and tracker.round_logged(r):
            return
        start_round(ctx, tracker, r, self.runtime)
        if picks is None:
            started = time.monotonic()
            picks = select_round(ctx, r, pending[r], backend, embedding)
            tracker.log_metrics(r, {"select/seconds": time.monotonic() - started, "select/picked": len(picks)})
        if not layout.labels(r).exists():
            label_round(ctx, r, labeler, picks, self.cfg.labeling.name)
        elif ctx.val_missing() and not layout.metrics(r).exists():
            gather_validation(ctx, labeler, r)
        if not layout.metrics(r).exists():
            check_validation(ctx, r, self.cfg.labeling.name)
        embedding_gate(ctx, tracker, r, embedding)
        learner = None
        if layout.metrics(r).exists():  # trained by an earlier run: its curves go to this round's new run
            tracker.log_history(r, ctx.read_metrics(r)["history"])
        else:
            with ctx.trainers.logging_to(tracker.round_logger(r)):
                learner = train_round(ctx, r)
            atomic_write_json(layout.runtime(r), self.runtime)
        if not (layout.predictions(r) / "tasks.json").exists():
            predict_round(ctx, r, learner)
        log_round(ctx, tracker, r)

    def note_runtime_change(self, target: int) -> None:
        """One line when this run's numerics differ from those of the campaign's last trained round: the same seed
        then gives other floats from here on (and, through the models, other picks)."""
        done = [r for r in range(1, target + 1) if self.layout.runtime(r).exists()]
        if done:
            changed = differences(self.layout.read_state(self.layout.runtime(done[-1])), self.runtime)
            if changed:
                log.warning(
                    "round %d was trained with other numerics than this run's (%s): later rounds may differ from "
                    "an uninterrupted campaign's", done[-1], "; ".join(changed)
                )  # fmt: skip

    def unscored(self, upto: int) -> list[int]:
        """Rounds up to `upto` trained without validation metrics (split.require_val=false)."""
        done = [r for r in range(1, upto + 1) if self.layout.metrics(r).exists()]
        return [r for r in done if "confusion" not in self.ctx.read_metrics(r)]

    def score_late(self, r: int) -> None:
        """Rounds up to r trained without validation metrics get them once every validation label is in."""
        if self.ctx.val_missing():
            return
        for k in self.unscored(r):
            log_late_scores(self.ctx, self.tracker, k, score_round(self.ctx, k))

    @property
    def tracker(self) -> Tracker:
        """The campaign's MLflow runs (opened once the run's checks have passed)."""
        assert self._tracker is not None
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


def end_status(exc: BaseException) -> str:
    if isinstance(exc, AwaitingLabels):
        return "SCHEDULED"
    return "KILLED" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "FAILED"
