"""Rounds and stages: what a campaign has done (its files say so) and what runs next.

Round N:  select -> label -> train -> predict -> log.  Each stage writes its output atomically into
`round_<N>/`; a stage whose output exists is skipped, so a rerun after a crash continues where it stopped.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from bpsrun.data.manifest import SplitSpec, read_meta
from bpsrun.data.prepare import image_stack, prepare
from bpsrun.data.sources import dataset_identity
from bpsrun.errors import BpsrunError
from bpsrun.export.predictions import read_predictions, write_predictions
from bpsrun.faults import checkpoint
from bpsrun.files import atomic_file, atomic_write_json, atomic_write_text, cached_npy, stable_hash
from bpsrun.label.jsonmin import read_labels
from bpsrun.label.labelstudio import LabelStudioLabeler
from bpsrun.label.oracle import Oracle, read_truth
from bpsrun.lock import campaign_lock, shared_lock
from bpsrun.select.config import round_config, validate
from bpsrun.select.engine import SelectionInputs, select
from bpsrun.select.remote import select_with_worker

log = logging.getLogger("bpsrun")


@dataclass
class Pool:
    """The manifest split in two: candidates for selection (train) and the held-out validation set."""

    rows: list[dict[str, str]]

    @property
    def train(self) -> list[int]:
        return [i for i, r in enumerate(self.rows) if r["split"] == "train"]

    @property
    def val(self) -> list[int]:
        return [i for i, r in enumerate(self.rows) if r["split"] == "val"]

    def files(self, idx: list[int]) -> list[str]:
        return [self.rows[i]["file"] for i in idx]


class Campaign:
    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.root = Path(cfg.paths.outputs) / cfg.campaign
        self.classes: list[str] = list(cfg.task.classes)
        self.task: str = cfg.task.name
        self._tracker = None

    # -- paths -------------------------------------------------------------------------------------------

    def round_dir(self, r: int) -> Path:
        return self.root / f"round_{r}"

    def predictions_dir(self, r: int) -> Path:
        return self.round_dir(r) / "lightly" / ".lightly" / "predictions"

    # -- entry -------------------------------------------------------------------------------------------

    def run(self) -> float:
        target = self.cfg.round
        if not isinstance(target, int) or target < 1:
            raise BpsrunError(f"round={target!r}: rounds count from 1; run e.g. `python -m bpsrun round=2`")
        fresh = not self.root.exists()
        try:
            with campaign_lock(self.root):
                return self.run_locked(target)
        except BpsrunError:
            if fresh and {p.name for p in self.root.iterdir()} <= {".lock"}:  # a start that wrote nothing
                shutil.rmtree(self.root)
            raise

    def run_locked(self, target: int) -> float:
        files = get_method(self.cfg.dataset.loader)(self.cfg.dataset)
        self.truth_csv = files.truth_csv
        self.labeler = self.make_labeler()  # before anything is written: a misconfigured run leaves no trace
        identity = self.check_identity()
        self.truth = read_truth(self.truth_csv, self.classes)  # a bad truth file stops the run before any write
        self.pending = {  # every selection config this run will use, validated before anything is written
            r: self.round_selection(r)
            for r in range(1, target + 1)
            if not (self.round_dir(r) / "selected.txt").exists()
        }
        split = SplitSpec(**OmegaConf.to_container(self.cfg.split, resolve=True))
        if self.cfg.reference.enabled:  # before any write: full supervision needs every image's label
            missing = [r["filename"] for r in read_meta(files.meta_csv)[1] if r["filename"] not in self.truth]
            if missing:
                raise BpsrunError(
                    f"reference.enabled=true trains on every pool image, but {self.truth_csv} has no label for "
                    f"{len(missing)} images of {files.meta_csv} (e.g. {missing[0]}); add them or set "
                    f"reference.enabled=false"
                )
        self.pool = Pool(prepare(files, split, self.root / "manifest.csv", self.metadata_dir, self.truth))
        if not (self.root / "campaign.json").exists():
            atomic_write_json(self.root / "campaign.json", identity)
        self.publish("data/", "lightly/.lightly/metadata/")
        for r in range(1, target + 1):
            self.run_round(r)
        reference = self.reference_stage()
        self.publish("lightly/.lightly/predictions/", round_=target)
        if self._tracker is not None:
            self._tracker.close()
        return self.report(target, reference)

    @property
    def metadata_dir(self) -> Path:
        return self.root / "lightly" / ".lightly" / "metadata"

    def check_identity(self) -> dict[str, Any]:
        """A campaign folder belongs to one dataset, split and seed; refuse to mix in another."""
        identity = {
            "dataset": dataset_identity(self.cfg),
            "split": OmegaConf.to_container(self.cfg.split, resolve=True),
            "seed": self.cfg.seed,
        }
        path = self.root / "campaign.json"
        if path.exists():
            stored = json.loads(path.read_text())
            for key, value in identity.items():
                if stored.get(key) != value:
                    raise BpsrunError(
                        f"{path}: this campaign was started with {key}={stored.get(key)}, now {key}={value}; "
                        f"keep the original settings or start a new campaign with campaign=<new name>"
                    )
        return identity

    def make_labeler(self) -> Oracle | LabelStudioLabeler:
        name = self.cfg.labeling.name
        if name not in ("oracle", "labelstudio"):
            raise BpsrunError(f"labeling={name} is not available; use labeling=oracle or labeling=labelstudio")
        if self.truth_csv is None:  # validation accuracy needs labels of the validation images, whoever labels
            raise BpsrunError(
                f"labeling={name} needs ground truth for validation; set dataset.truth_csv=FILE (filename,label; "
                f"with labelstudio, rows for the validation images suffice)"
            )
        if name == "oracle":
            return Oracle(self.truth_csv, self.classes)
        return LabelStudioLabeler(
            self.cfg.labeling, self.cfg.campaign, self.classes, self.image_path, self.round_dir, self.previous_probs
        )

    @cached_property
    def path_of(self) -> dict[str, Path]:
        """Manifest file name -> image path."""
        return {r["file"]: Path(r["path"]) for r in self.pool.rows}

    @cached_property
    def row_index(self) -> dict[str, int]:
        """Manifest file name -> row (the image stacks' order)."""
        return {row["file"]: i for i, row in enumerate(self.pool.rows)}

    def image_path(self, file: str) -> Path:
        return self.path_of[file]

    def previous_probs(self, r: int, files: list[str]) -> np.ndarray | None:
        """Round r-1's predicted probabilities for `files` (Label Studio pre-annotations); None in round 1."""
        if r == 1:
            return None
        return read_predictions(self.predictions_dir(r - 1), self.task, files)

    def publish(self, *parts: str, round_: int | None = None) -> None:
        """export.s3: the campaign as a Lightly S3 datasource (pool images, metadata, the latest predictions)."""
        spec = self.cfg.export.s3
        if not spec.bucket:
            return
        from bpsrun.data.s3 import S3Location, client, s3_errors
        from bpsrun.export.s3 import image_objects, lightly_objects, publish

        if spec.images not in ("tiff", "png"):
            raise BpsrunError(f"export.s3.images={spec.images!r}: use tiff (the originals) or png (8-bit renders)")
        loc = S3Location(spec.bucket, spec.prefix or "", spec.region, spec.endpoint_url, anonymous=False)
        s3 = client(loc, int(spec.workers))
        lightly_root = self.root / "lightly" if round_ is None else self.round_dir(round_) / "lightly"
        for part in parts:
            if part == "data/":
                pool = {f: self.path_of[f] for f in self.pool.files(self.pool.train)}
                objects = image_objects(pool, spec.images)
            else:
                objects = lightly_objects(lightly_root, spec.images)
            with s3_errors(loc, "export.s3"):
                publish(s3, loc, objects, part, int(spec.workers))

    # -- one round ---------------------------------------------------------------------------------------

    def run_round(self, r: int) -> None:
        rd = self.round_dir(r)
        selected = self.select_stage(r)
        if not (rd / "labels.json").exists():
            log.info("round %d: labeling %d images with the %s", r, len(selected), self.cfg.labeling.name)
            labels = self.labeler.label(r, selected)
            checkpoint("labeling")
            atomic_write_json(rd / "labels.json", labels)
        module = None
        if not (rd / "metrics.json").exists():
            module = self.train_stage(r)
        if not (self.predictions_dir(r) / "tasks.json").exists():
            self.predict_stage(r, module)
        self.log_stage(r)

    def labeled_before(self, r: int) -> list[str]:
        return [f for k in range(1, r) for f in self.read_selected(k)]

    def read_selected(self, r: int) -> list[str]:
        return (self.round_dir(r) / "selected.txt").read_text().splitlines()

    def round_selection(self, r: int) -> dict[str, Any]:
        """Round r's Lightly selection config, validated; round 1 has no model, so no SCORES or PREDICTIONS."""
        config = OmegaConf.to_container(self.cfg.selection, resolve=True)
        lightly_config = round_config(config, r)
        source = f"conf/selection/{config['name']}.yaml ({'first' if r == 1 else 'later'} rounds)"
        validate(lightly_config, source=source)
        needs_model = {s["input"]["type"] for s in lightly_config["strategies"]} & {"SCORES", "PREDICTIONS"}
        if r == 1 and needs_model:
            raise BpsrunError(
                f"{source}: {sorted(needs_model)} inputs need predictions for task {self.task!r}, but round 1 has "
                f"no model yet; use EMBEDDINGS or RANDOM in first_round"
            )
        return lightly_config

    def select_stage(self, r: int) -> list[str]:
        rd = self.round_dir(r)
        config = OmegaConf.to_container(self.cfg.selection, resolve=True)
        lightly_config = round_config(config, r)
        if (rd / "selected.txt").exists():
            stored = json.loads((rd / "selection.json").read_text())
            if stored != lightly_config:
                raise BpsrunError(
                    f"round {r} of campaign {self.cfg.campaign} is finished with selection {json.dumps(stored)}; "
                    f"you asked for {json.dumps(lightly_config)}. Finished rounds are never redone: keep the "
                    f"selection, or start a new campaign with campaign=<new name>"
                )
            return self.read_selected(r)
        lightly_config = self.pending[r]
        labeled = set(self.labeled_before(r))
        candidates = [i for i in self.pool.train if self.pool.rows[i]["file"] not in labeled]
        meta_keys = [k for k in self.pool.rows[0] if k not in ("file", "path", "split")]
        inputs = SelectionInputs(
            candidates=self.pool.files(candidates),
            categories={self.task: self.classes},
            metadata={k: np.array([self.pool.rows[i][k] for i in candidates]) for k in meta_keys},
            default_seed=int(self.cfg.seed),
        )
        inputs_used = {s["input"]["type"] for s in lightly_config["strategies"]}
        row_of = {self.pool.rows[i]["file"]: k for k, i in enumerate(self.pool.train)}  # file -> pool row
        if "EMBEDDINGS" in inputs_used:
            emb = self.embeddings(r)
            inputs.embeddings = emb[[row_of[f] for f in inputs.candidates]]
            labeled_rows = [row_of[f] for f in self.labeled_before(r)]
            inputs.labeled_embeddings = emb[labeled_rows] if labeled_rows else None
            inputs.tags = {f"round_{k}": emb[[row_of[f] for f in self.read_selected(k)]] for k in range(1, r)}
        if inputs_used & {"SCORES", "PREDICTIONS"} and r > 1:
            inputs.predictions[self.task] = read_predictions(self.predictions_dir(r - 1), self.task, inputs.candidates)
        if r > 1 and any(s["input"].get("score") == "uncertainty_bald" for s in lightly_config["strategies"]):
            inputs.mc_predictions[self.task] = self.mc_probs(r - 1)[:, [row_of[f] for f in inputs.candidates]]
        if config["backend"] == "lightly_worker":
            pool = set(inputs.candidates)
            picks = [f for f in select_with_worker(lightly_config, config["worker"]["dataset_id"]) if f in pool]
        elif config["backend"] == "local":
            picks = [inputs.candidates[i] for i in select(lightly_config, inputs)]
        else:
            raise BpsrunError(f"selection.backend={config['backend']!r}: use local or lightly_worker")
        log.info("round %d: selected %d of %d candidates", r, len(picks), len(candidates))
        atomic_write_json(rd / "selection.json", lightly_config)
        checkpoint("selection")
        atomic_write_text(rd / "selected.txt", "".join(f"{f}\n" for f in picks))
        return picks

    def round_model(self, r: int) -> torch.nn.Module:
        """Round r's trained model, rebuilt from its config and `model.pt`, in eval mode on the CPU."""
        from bpsrun.model.train import build_module

        module = build_module(self.cfg.model, len(self.classes))
        module.load_state_dict(torch.load(self.round_dir(r) / "model.pt", map_location="cpu"))
        return module.eval()

    def pool_images(self) -> np.ndarray:
        return np.asarray(self.images(int(self.cfg.model.image_size))[self.pool.train])

    def mc_probs(self, r: int) -> np.ndarray:
        """Monte-Carlo dropout probabilities (passes x pool x classes) of round r's model, computed once."""
        from bpsrun.model.train import mc_dropout_proba

        passes = int(self.cfg.selection.get("mc_passes", 10))
        batch, seed = self.cfg.trainer.eval_batch_size, int(self.cfg.seed) * 1000 + r
        return cached_npy(
            self.round_dir(r) / "mc_probs.npy",
            lambda: mc_dropout_proba(self.round_model(r), self.pool_images(), passes, batch, seed=seed),
        )

    def embeddings(self, r: int) -> np.ndarray:
        """Embeddings of the training pool for round r's selection."""
        if self.cfg.embedding.name == "classifier" and r > 1:
            return self.classifier_embeddings(r - 1)
        return self.ssl_embeddings()

    def classifier_embeddings(self, r: int) -> np.ndarray:
        """Penultimate-layer features of round r's model, computed once."""

        def compute() -> np.ndarray:
            module, x = self.round_model(r), torch.from_numpy(self.pool_images()).float()
            with torch.no_grad():
                return torch.cat([module.net.embed(xb) for xb in torch.split(x, 256)]).numpy().astype(np.float32)

        return cached_npy(self.round_dir(r) / "embeddings-classifier.npy", compute)

    def ssl_embeddings(self) -> np.ndarray:
        """Self-supervised embeddings of the training pool, computed once per pool, seed and settings.

        They use no labels, so campaigns that differ only in strategy share them: the first computes them into
        `paths.data/embeddings/` (under a lock, for parallel sweep jobs) and each campaign keeps its own copy.
        """
        from bpsrun.embed.simclr import embed_simclr

        ecfg = self.cfg.embedding
        params = {k: v for k, v in OmegaConf.to_container(ecfg).items() if k not in ("name", "image_size")}
        key = {
            "dataset": dataset_identity(self.cfg),
            "pool": self.pool.files(self.pool.train),
            "seed": int(self.cfg.seed),
            "embedding": OmegaConf.to_container(ecfg, resolve=True),
        }
        shared = Path(self.cfg.paths.data) / "embeddings" / f"simclr-{stable_hash(key)}.npy"

        def compute() -> np.ndarray:
            log.info("embedding %d pool images with SimCLR (once per pool and seed)", len(self.pool.train))
            stack = np.asarray(self.images(int(ecfg.image_size))[self.pool.train])
            return embed_simclr(stack, seed=int(self.cfg.seed), accelerator=self.cfg.trainer.accelerator, **params)

        def from_shared() -> np.ndarray:
            with shared_lock(shared.with_suffix(".lock")):
                return cached_npy(shared, compute)

        return cached_npy(self.root / "embeddings" / "simclr.npy", from_shared)

    def images(self, size: int) -> np.ndarray:
        return image_stack(self.pool.rows, size, self.root / "cache" / f"images-{size}.npy")

    def labels_until(self, r: int) -> dict[str, str]:
        labels: dict[str, str] = {}
        for k in range(1, r + 1):
            labels.update(read_labels(self.round_dir(k) / "labels.json", self.classes))
        return labels

    def val_data(self, stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        val = self.pool.val
        y = np.array([self.classes.index(self.truth[self.pool.rows[i]["file"]]) for i in val])
        return np.asarray(stack[val]), y

    def train_stage(self, r: int) -> torch.nn.Module:
        rd = self.round_dir(r)
        labels = self.labels_until(r)
        files = sorted(labels, key=self.row_index.__getitem__)
        log.info("round %d: training %s on %d labels", r, self.cfg.model.name, len(files))
        module, scores = self.train_on(files, [labels[f] for f in files], seed=int(self.cfg.seed) * 1000 + r)
        with atomic_file(rd / "model.pt") as tmp:
            torch.save(module.state_dict(), tmp)
        atomic_write_json(rd / "metrics.json", {"round": r, **scores})
        return module

    def train_on(self, files: list[str], labels: list[str], seed: int) -> tuple[torch.nn.Module, dict[str, Any]]:
        """A fresh model trained on `files`, scored on the validation set: (module on the CPU, metrics)."""
        from bpsrun.model.train import evaluate, fit, predict_proba

        stack = self.images(int(self.cfg.model.image_size))
        x = np.asarray(stack[[self.row_index[f] for f in files]])
        y = np.array([self.classes.index(label) for label in labels])
        x_val, y_val = self.val_data(stack)
        module, history = fit(self.cfg, x, y, x_val, y_val, seed=seed, num_classes=len(self.classes))
        module = module.cpu()
        probs = predict_proba(module, x_val, self.cfg.trainer.eval_batch_size, "validating")
        return module, {"n_labeled": len(y), **evaluate(probs, y_val, len(self.classes)), "history": history}

    def reference_stage(self) -> dict[str, Any] | None:
        """reference.enabled: full supervision for this dataset, model and seed, trained once and shared."""
        if not self.cfg.reference.enabled:
            return None
        from bpsrun.reference import reference_dir

        out = reference_dir(self.cfg)
        with shared_lock(out.with_name(f"{out.name}.lock")):  # parallel sweep jobs with the same seed wait here
            if not (out / "metrics.json").exists():
                files = self.pool.files(self.pool.train)
                log.info("full supervision: training %s on all %d pool images", self.cfg.model.name, len(files))
                _, scores = self.train_on(files, [self.truth[f] for f in files], seed=int(self.cfg.seed) * 1000)
                atomic_write_json(out / "metrics.json", scores)
            metrics = json.loads((out / "metrics.json").read_text())
            params: dict[str, Any] = OmegaConf.to_container(self.cfg, resolve=True)
            self.tracker.log_reference(out.name, params, metrics["history"], summary_metrics(metrics))
        return metrics

    def predict_stage(self, r: int, module: torch.nn.Module | None) -> None:
        from bpsrun.model.train import predict_proba

        module = module if module is not None else self.round_model(r)
        probs = predict_proba(module, self.pool_images(), self.cfg.trainer.eval_batch_size, "predicting pool")
        train = self.pool.train
        write_predictions(self.predictions_dir(r), self.task, self.classes, self.pool.files(train), probs)
        log.info("round %d: wrote %d Lightly prediction files", r, len(train))

    @property
    def tracker(self):
        if self._tracker is None:
            from bpsrun.tracking import Tracker

            tags = {"campaign": self.cfg.campaign, "selection": self.cfg.selection.name, "seed": str(self.cfg.seed),
                    "dataset": self.cfg.dataset.name, "model": self.cfg.model.name}  # fmt: skip
            self._tracker = Tracker(
                self.cfg.tracking.uri,
                f"bpsrun-{self.cfg.dataset.name}",
                self.cfg.campaign,
                tags,
                Path(self.cfg.paths.outputs) / "mlartifacts",
            )
        return self._tracker

    def log_stage(self, r: int) -> None:
        from bpsrun.plots import confusion_png, picks_png

        if self.tracker.round_logged(r):
            return
        rd = self.round_dir(r)
        metrics = json.loads((rd / "metrics.json").read_text())
        confusion_png(
            rd / "confusion.png", metrics["confusion"], self.classes, f"round {r}: {metrics['n_labeled']} labels"
        )
        labels = read_labels(rd / "labels.json", self.classes)
        labeled = [f for f in self.read_selected(r) if f in labels]  # labeling.partial=proceed may leave some out
        picks_png(rd / "picks.png", [self.path_of[f] for f in labeled], [labels[f] for f in labeled])
        summary = summary_metrics(metrics)
        params: dict[str, Any] = OmegaConf.to_container(self.cfg, resolve=True)
        params["selection_config"] = json.loads((rd / "selection.json").read_text())
        artifacts = [rd / n for n in ("selected.txt", "labels.json", "metrics.json", "confusion.png", "picks.png")]
        self.tracker.log_round(r, params, metrics["history"], summary, artifacts)
        log.info("round %d: logged to MLflow (%s)", r, self.cfg.tracking.uri)

    def report(self, target: int, reference: dict[str, Any] | None) -> float:
        lines = ["", f"campaign {self.cfg.campaign}", f"{'round':>5}  {'labeled':>7}  {'val acc':>7}  {'bal acc':>7}"]
        last = 0.0
        for r in range(1, target + 1):
            m = json.loads((self.round_dir(r) / "metrics.json").read_text())
            lines.append(f"{r:>5}  {m['n_labeled']:>7}  {m['val_accuracy']:>7.3f}  {m['val_balanced_accuracy']:>7.3f}")
            last = m["val_accuracy"]
        if reference is not None:
            m = reference
            lines.append(
                f"{'full':>5}  {m['n_labeled']:>7}  {m['val_accuracy']:>7.3f}  {m['val_balanced_accuracy']:>7.3f}"
            )
        print("\n".join(lines), flush=True)
        return last


def summary_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(metrics[k]) for k in ("n_labeled", "val_accuracy", "val_balanced_accuracy", "val_f1")}
