"""Learners: what trains on a round's labels and predicts the pool. `conf/model/<name>.yaml` names one by
`_target_`; it is built with that file's keys, `num_classes` and `trainers` (bpsrun.model.trainers.Trainers), and
`encoder` (bpsrun.embed.encoder.Encoder: the embedding's network) and `pool` (size -> the training pool's images) if
its constructor takes them.

`ImageClassifier` is a LightningModule (`net` + optimiser) trained, validated and run by Lightning Trainers;
`FineTuned` is one whose net starts from the embedding's network; `LinearProbe` trains a head on its frozen
features.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import Metric, MetricCollection

from bpsrun.data.datamodule import Stack, StackDataModule
from bpsrun.embed.encoder import Encoder
from bpsrun.errors import BpsrunError
from bpsrun.model.gather import predict_all
from bpsrun.model.module import NucleusClassifier, flip_rotate
from bpsrun.model.trainers import Trainers

Split = tuple[Stack, np.ndarray]  # images (or features) and class indices


class Learner(Protocol):
    """Images arrive as an (N, 1, S, S) array or as rows of the campaign's image cache (PoolStack: the pool, the
    validation set, the labeled set), read on demand: `x[rows]` or `x.chunks()` read part of them, `np.asarray(x)`
    all of them. bpsrun's own learners read them a batch at a time (StackRows). A learner whose constructor names
    `pool` also gets the training pool's images (size -> PoolStack, never the validation set) to learn from
    unlabeled ones (model=semi)."""

    image_size: int  # side of the square model input

    def fit(self, train: Split, val: Split | None, seed: int) -> list[dict]:
        """Train a fresh model on `train` (images, class indices), validating on `val` each epoch (None: the
        validation labels are not all in yet): the history."""
        ...

    def evaluate(self, val: Split) -> dict[str, Any]:
        """val_accuracy, val_balanced_accuracy, val_f1 and the confusion matrix (rows: truth) of the model."""
        ...

    def predict_proba(self, x: Stack) -> np.ndarray:
        """N x C class probabilities (float64)."""
        ...

    def mc_proba(self, x: Stack, passes: int, seed: int) -> np.ndarray:
        """T x N x C probabilities of stochastic passes (uncertainty_bald); raise BpsrunError if it has none."""
        ...

    def features(self, x: Stack) -> np.ndarray:
        """N x D features of the trained model (embedding=classifier)."""
        ...

    def save(self, path: Path) -> None: ...

    def load(self, path: Path) -> None: ...


class History(pl.Callback):
    """Epoch-level metrics, kept for MLflow (logged after training so a crash never leaves a half-logged run).

    An epoch's aggregated train and validation metrics are complete only once the next epoch starts (or
    training ends), so rows are taken then. Rank 0 writes them to `out` when training ends: under DDP with
    `start_method: spawn` the ranks are other processes, and their callbacks die with them.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.rows: list[dict[str, float]] = []

    def record(self, trainer: pl.Trainer) -> None:
        row = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.rows.append({"epoch": len(self.rows), "step": trainer.global_step, **row})

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.current_epoch > len(self.rows):
            self.record(trainer)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.record(trainer)
        if trainer.is_global_zero:
            self.out.write_text(json.dumps(self.rows))


class RankSeed(pl.Callback):
    """Seeds each DDP rank's random stream from `key` and its rank as prediction starts: DDPStrategy resets every
    rank to the training seed (PL_GLOBAL_SEED), which would give every Monte-Carlo dropout pass the same masks.
    One process keeps the stream its caller seeded."""

    def __init__(self, key: Sequence[int]) -> None:
        self.key = list(key)

    def on_predict_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            torch.manual_seed(int(np.random.SeedSequence([*self.key, trainer.global_rank]).generate_state(1)[0]))


def scored(metric: Metric | MetricCollection, preds: torch.Tensor, target: torch.Tensor) -> Metric | MetricCollection:
    """A fresh copy of `metric` (on the CPU, in this process) updated with `preds` against `target`."""
    fresh = metric.clone().cpu()
    fresh.reset()
    fresh.update(preds, target)
    return fresh


class ImageClassifier:
    def __init__(
        self,
        net: Callable[..., nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        image_size: int,
        batch_size: int,
        num_classes: int,
        trainers: Trainers,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = flip_rotate,  # None: inputs are features
        max_epochs: int | None = None,  # None: trainer.max_epochs
    ):
        self.net, self.optimizer = net, optimizer
        self.image_size, self.batch_size, self.num_classes = int(image_size), int(batch_size), num_classes
        self.trainers, self.augment = trainers, augment
        self.epochs = {"max_epochs": int(max_epochs)} if max_epochs else {}
        self.module: NucleusClassifier | None = None  # set by fit or load

    def make_net(self) -> nn.Module:
        return self.net(num_classes=self.num_classes)

    def fresh(self) -> NucleusClassifier:
        return NucleusClassifier(
            self.make_net(), self.optimizer, self.num_classes, self.trainers.lr_schedule, self.augment
        )

    def data(self, **parts: Any) -> StackDataModule:
        t = self.trainers
        return StackDataModule(self.batch_size, t.eval_batch_size, t.min_samples_per_epoch, **parts)

    def fit(self, train: Split, val: Split | None, seed: int) -> list[dict]:
        pl.seed_everything(seed, workers=True, verbose=False)
        self.module = self.fresh()
        unvalidated = {"limit_val_batches": 0} if val is None else {}  # no validation labels yet: no val loop
        with tempfile.TemporaryDirectory(prefix="bpsrun-fit-") as tmp:
            history = History(Path(tmp) / "history.json")
            self.trainers.fit_trainer(callbacks=[history], **self.epochs, **unvalidated).fit(
                self.module, datamodule=self.data(train=train, val=val)
            )
            return json.loads(history.out.read_text())

    def evaluate(self, val: Split) -> dict[str, Any]:
        """The module's own validation metrics over predictions of every image once: exact on any number of
        devices (a DDP validation loop's sampler pads the shards with repeated images)."""
        preds = torch.from_numpy(self.predict_proba(val[0])).argmax(dim=1)
        target = torch.from_numpy(val[1]).long()
        scores = {k: v.item() for k, v in scored(self.module.val_metrics, preds, target).compute().items()}
        return {
            "val_accuracy": round(scores["val/accuracy"], 6),
            "val_balanced_accuracy": round(scores["val/balanced_accuracy"], 6),
            "val_f1": round(scores["val/f1"], 6),
            "confusion": scored(self.module.confusion, preds, target).compute().tolist(),
        }

    def predict(self, x: Stack, mode: str, seed: Sequence[int] = ()) -> np.ndarray:
        """Every image's prediction in order, on the trainer config's devices (bpsrun.model.gather); `seed` keys
        each DDP rank's random stream (RankSeed)."""
        self.module.predict_mode = mode
        try:
            trainer = self.trainers.trainer(callbacks=[RankSeed(seed)] if seed else [])
            return predict_all(trainer, self.module, self.data(predict=x)).numpy()
        finally:
            self.module.predict_mode = "proba"

    def predict_proba(self, x: Stack) -> np.ndarray:
        return self.predict(x, "proba").astype(np.float64)

    def mc_proba(self, x: Stack, passes: int, seed: int) -> np.ndarray:
        """T x N x C probabilities with dropout active and everything else (batch norm) in eval mode."""
        if not any(isinstance(m, nn.Dropout) and m.p > 0 for m in self.module.modules()):
            raise BpsrunError("uncertainty_bald needs a model with dropout (e.g. model=small_cnn); this one has none")
        torch.manual_seed(seed)
        return np.stack([self.predict(x, "mc_dropout", (seed, t)).astype(np.float64) for t in range(passes)])

    def features(self, x: Stack) -> np.ndarray:
        """Penultimate-layer features (the network's `embed`), float32."""
        return self.predict(x, "features").astype(np.float32)

    def save(self, path: Path) -> None:
        torch.save(self.module.state_dict(), path)

    def load(self, path: Path) -> None:
        self.module = self.fresh()
        self.module.load_state_dict(torch.load(path, map_location="cpu"))
        self.module.eval()


def encoder_input(image_size: int, encoder: Encoder) -> int:
    """A learner on the embedding's network takes images at the size that network was trained on."""
    if int(image_size) != encoder.image_size:
        raise BpsrunError(
            f"model.image_size={image_size}, but this model builds on the embedding's network, trained at "
            f"embedding.image_size={encoder.image_size}; leave model.image_size at ${{embedding.image_size}}"
        )
    return encoder.image_size


def on_encoder(net: Callable[..., nn.Module], encoder: Encoder, num_classes: int, image_size: int) -> nn.Module:
    """A fresh copy of the embedding's network under `net`'s new head (e.g. FineTuneNet)."""
    return net(backbone=encoder.module(), num_classes=num_classes, image_size=image_size)


class FineTuned(ImageClassifier):
    """model=finetune: the embedding's network with a new head (`net`, e.g. FineTuneNet), trained end to end."""

    def __init__(
        self,
        net: Callable[..., nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        image_size: int,
        batch_size: int,
        num_classes: int,
        trainers: Trainers,
        encoder: Encoder,
    ):
        super().__init__(net, optimizer, encoder_input(image_size, encoder), batch_size, num_classes, trainers)
        self.encoder = encoder

    def make_net(self) -> nn.Module:
        return on_encoder(self.net, self.encoder, self.num_classes, self.image_size)


class LinearProbe:
    """model=linear_probe: a head (`net`, e.g. ProbeHead) trained on the frozen features of the embedding's network.

    Images are encoded once per campaign run (Encoder's cache), so a round trains in seconds; the head is an
    ImageClassifier over feature vectors (no image augmentation), trained, validated and run by the same Trainers
    for its own `max_epochs` (feature epochs cost milliseconds, and tens of labels need many steps).
    model.pt holds the head; the network comes from the embedding's cache.
    """

    def __init__(
        self,
        net: Callable[..., nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        image_size: int,
        batch_size: int,
        num_classes: int,
        trainers: Trainers,
        encoder: Encoder,
        max_epochs: int,
    ):
        self.net, self.encoder = net, encoder
        self.image_size = encoder_input(image_size, encoder)
        self.classifier = partial(
            ImageClassifier,
            optimizer=optimizer,
            image_size=self.image_size,
            batch_size=batch_size,
            num_classes=num_classes,
            trainers=trainers,
            augment=None,
            max_epochs=max_epochs,
        )
        self.head: ImageClassifier | None = None  # set by fit or load

    def head_for(self, mean: torch.Tensor, scale: torch.Tensor) -> ImageClassifier:
        return self.classifier(partial(self.net, mean=mean, scale=scale))

    def encoded(self, data: Split | None) -> Split | None:
        return None if data is None else (self.encoder.encode(data[0]), data[1])

    def fit(self, train: Split, val: Split | None, seed: int) -> list[dict]:
        x, y = self.encoded(train)
        feats = torch.from_numpy(x)
        std = feats.std(dim=0, correction=0)
        self.head = self.head_for(feats.mean(dim=0), torch.where(std > 1e-6, std, 1.0))  # constant features stay
        return self.head.fit((x, y), self.encoded(val), seed)

    def evaluate(self, val: Split) -> dict[str, Any]:
        return self.head.evaluate(self.encoded(val))

    def predict_proba(self, x: Stack) -> np.ndarray:
        return self.head.predict_proba(self.encoder.encode(x))

    def mc_proba(self, x: Stack, passes: int, seed: int) -> np.ndarray:
        return self.head.mc_proba(self.encoder.encode(x), passes, seed)

    def features(self, x: Stack) -> np.ndarray:
        """The embedding network's frozen features (what the head was trained on)."""
        return self.encoder.encode(x)

    def save(self, path: Path) -> None:
        self.head.save(path)

    def load(self, path: Path) -> None:
        dim = torch.load(path, map_location="cpu", weights_only=True)["net.mean"].numel()
        self.head = self.head_for(torch.zeros(dim), torch.ones(dim))  # the saved buffers replace these
        self.head.load(path)
