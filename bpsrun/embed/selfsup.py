"""Self-supervised embeddings of the pool: a small CNN trained by SimCLR, BYOL, VICReg or DINO (`embedding/method=`,
bpsrun.embed.objectives: lightly's losses and heads).

Views are made on 16-bit-normalised tensors, a batch at a time (lightly's PIL transforms would clip 16-bit data):
random resized crops, flips, 90-degree rotations, Gaussian blur, intensity gain and Gaussian noise, each set by
the config's `augment` keys (`Views`). No labels are used. The trained backbone is kept with the embedding, for
learners that build on it (bpsrun.embed.encoder). With `checkpoint` set, nothing is trained: the backbone is one
`bpsrun pretrain` trained once on an image archive (bpsrun.embed.pretrain), checked against the config first.
"""

from __future__ import annotations

import io
import logging
import math
import os
import pickle
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from bpsrun.data.datamodule import StackRows
from bpsrun.data.pool import PoolStack
from bpsrun.embed.base import EmbedContext
from bpsrun.embed.encoder import Features
from bpsrun.embed.objectives import Objective
from bpsrun.errors import BpsrunError
from bpsrun.faults import checkpoint
from bpsrun.files import atomic_file, bytes_digest, stable_hash
from bpsrun.lock import shared_lock
from bpsrun.model.gather import predict_all
from bpsrun.model.networks import SmallConvNet
from bpsrun.model.trainers import Trainers

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("bpsrun")


@dataclass(frozen=True)
class Views:
    """How two views of an image are made: the embedding learns to ignore exactly these changes."""

    flip: bool = True  # mirror images
    rotate90: bool = True  # rotate by a multiple of 90 degrees (nuclei have no preferred orientation)
    crop_scale: tuple[float, float] = (0.5, 1.0)  # random resized crop: share of the image's area kept
    blur_sigma: tuple[float, float] = (0.0, 1.0)  # Gaussian blur, sigma in pixels (focus varies); (0, 0): none
    gain: tuple[float, float] = (0.7, 1.3)  # intensity factor (exposure, staining)
    noise: float = 0.05  # standard deviation of added Gaussian noise

    @classmethod
    def of(cls, keys: Mapping[str, Any]) -> Views:
        """From the config's `augment` keys (its lists become tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, Sequence) else v for k, v in keys.items()})


def crop_and_turn(x: torch.Tensor, views: Views) -> torch.Tensor:
    """Random resized crops, flips and 90-degree rotations as one affine resampling of the batch."""
    n = len(x)
    lo, hi = views.crop_scale
    area = torch.empty(n).uniform_(lo, hi)
    aspect = torch.exp(torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3)))
    w, h = (area * aspect).sqrt().clamp(max=1.0), (area / aspect).sqrt().clamp(max=1.0)
    turns = torch.randint(0, 4, (n,)) if views.rotate90 else torch.zeros(n, dtype=torch.long)
    angle = turns * (math.pi / 2)
    cos, sin = angle.cos().round(), angle.sin().round()
    mirror = torch.where(torch.rand(n) < 0.5, -1.0, 1.0) if views.flip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = w * cos * mirror, -w * sin
    theta[:, 1, 0], theta[:, 1, 1] = h * sin * mirror, h * cos
    theta[:, 0, 2] = (1 - w) * torch.empty(n).uniform_(-1, 1)  # the crop's centre, inside the image
    theta[:, 1, 2] = (1 - h) * torch.empty(n).uniform_(-1, 1)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def blur(x: torch.Tensor, sigma: tuple[float, float]) -> torch.Tensor:
    """A separable Gaussian blur with a random sigma per image (one grouped convolution per axis)."""
    lo, hi = sigma
    if hi <= 0:
        return x
    n, c, height, width = x.shape
    radius = math.ceil(3 * hi)
    s = torch.empty(n, 1).uniform_(lo, hi).clamp(min=1e-3).to(x)
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (offsets / s) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (n * c, 2r + 1)
    out = F.pad(x.reshape(1, n * c, height, width), (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel[:, None, :, None], groups=n * c)
    out = F.conv2d(out, kernel[:, None, None, :], groups=n * c)
    return out.reshape(n, c, height, width)


def augment(x: torch.Tensor, views: Views) -> torch.Tensor:
    out = blur(crop_and_turn(x, views), views.blur_sigma)
    gain = torch.empty(len(x), 1, 1, 1).uniform_(*views.gain).to(x)
    return out * gain + views.noise * torch.randn_like(out)


def ssl_backbone(width: int) -> nn.Module:
    """The network self-supervision trains: small_cnn's feature extractor, so model=finetune is small_cnn started
    from it."""
    return SmallConvNet(in_channels=1, width=width).features


class SelfSupervised(pl.LightningModule):
    """The backbone trained by a self-supervised objective (bpsrun.embed.objectives) on two views of each image."""

    def __init__(self, width: int, lr: float, views: Views, method: Mapping[str, Any]):
        super().__init__()
        self.backbone = ssl_backbone(width)
        self.objective: Objective = instantiate(dict(method), backbone=self.backbone, feature_dim=4 * width)
        self.views, self.lr = views, lr

    def training_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> torch.Tensor:
        checkpoint("embedding")
        (x,) = batch
        loss = self.objective.loss(self.backbone, augment(x, self.views), augment(x, self.views))
        self.log("ssl/loss", loss, on_epoch=True, on_step=False, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        progress = self.trainer.global_step / max(self.trainer.estimated_stepping_batches, 1)
        self.objective.step_done(self.backbone, min(progress, 1.0))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=1e-4)


@dataclass(frozen=True)
class SSLSettings:
    epochs: int
    batch_size: int
    width: int  # backbone channels; features are 4 * width dimensional
    lr: float
    views: Views
    method: dict[str, Any]  # the objective's config (_target_ and its keys): conf/embedding/method/

    @property
    def method_name(self) -> str:
        return self.method["_target_"].rpartition(".")[2].removesuffix("Objective")

    @classmethod
    def of(
        cls,
        epochs: int,
        batch_size: int,
        width: int,
        lr: float,
        augment: Mapping[str, Any],
        method: Mapping[str, Any],
        **_: Any,  # the embedding config's other keys (image_size, checkpoint, ...)
    ) -> SSLSettings:
        plain = OmegaConf.to_container(method) if isinstance(method, DictConfig) else dict(method)
        return cls(int(epochs), int(batch_size), int(width), lr, Views.of(augment), plain)


def train_ssl(
    images: np.ndarray | PoolStack,
    trainers: Trainers,
    settings: SSLSettings,
    seed: int,
    resume: Path | None = None,
    **trainer: Any,
) -> SelfSupervised:
    """The self-supervised objective trained on `images` (N, 1, S, S), read a batch at a time; resumed from the Lightning checkpoint
    `resume`, if given. `trainer`: Trainer options over the `trainer` config's (callbacks, checkpointing)."""
    pl.seed_everything(seed, workers=True, verbose=False)
    s = settings
    model = SelfSupervised(s.width, s.lr, s.views, s.method)
    n = len(images)
    loader = DataLoader(StackRows(images), batch_size=min(s.batch_size, n), shuffle=True, drop_last=n > s.batch_size)
    trainers.trainer(max_epochs=s.epochs, **trainer).fit(model, loader, ckpt_path=resume)
    return model


def features(net: nn.Module, images: np.ndarray | PoolStack, trainers: Trainers) -> np.ndarray:
    loader = DataLoader(StackRows(images), batch_size=trainers.eval_batch_size)
    return predict_all(trainers.trainer(), Features(net), loader).numpy().astype(np.float32)


FORMAT = "bpsrun-ssl-backbone/1"  # the pretrained backbone file `bpsrun pretrain` writes


@dataclass(frozen=True)
class Pretrained:
    """A backbone file from `bpsrun pretrain`, read and checked against the embedding config."""

    source: str  # the path as configured
    digest: str  # of the file's bytes: the shared cache is keyed by what the file holds, not where it lies
    state_dict: dict[str, torch.Tensor]
    epochs: int
    images: int


def tracking_store(tracking_uri: str | None) -> str:
    """embedding.tracking_uri, else $MLFLOW_TRACKING_URI, else the campaign's default store (as bpsrun predict)."""
    from bpsrun.serve.predict import DEFAULT_TRACKING_URI

    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


def model_version(client: MlflowClient, uri: str) -> tuple[str, str]:
    """The name and version models:/NAME/VERSION or models:/NAME@ALIAS names (`latest`, either way: the newest)."""
    name, at, alias = uri.removeprefix("models:/").partition("@")
    version = None
    if not at:
        name, _, version = name.rpartition("/")
    if "latest" in (version, alias):
        return name, str(max(int(v.version) for v in client.search_model_versions(f"name = '{name}'")))
    return name, version or client.get_model_version_by_alias(name, alias).version


def registered_bytes(uri: str, tracking_uri: str | None) -> bytes:
    """The one file of the registered model version `uri` (models:/NAME/VERSION or models:/NAME@ALIAS)."""
    from mlflow import MlflowClient  # here: only a models:/ checkpoint needs MLflow
    from mlflow.exceptions import MlflowException

    from bpsrun.checks import redacted

    where = tracking_store(tracking_uri)
    client = MlflowClient(tracking_uri=where, registry_uri=where)  # MLflow's own models:/ download: the global store
    with tempfile.TemporaryDirectory() as tmp:
        try:
            source = client.get_model_version(*model_version(client, uri)).source  # runs:/RUN/PATH, as pretrain logs
            run_id, _, path = source.removeprefix("runs:/").partition("/")
            folder = Path(client.download_artifacts(run_id, path, tmp))
        except (MlflowException, OSError, ValueError) as exc:  # ValueError: no versions at all (max of nothing)
            reason = str(getattr(exc, "message", exc)).splitlines()[0]
            raise BpsrunError(
                f"embedding.checkpoint={uri}: no such model in {redacted(where)} ({reason}); check the name and "
                f"version, or set embedding.tracking_uri to the store `bpsrun pretrain register=...` logged it to"
            ) from None
        files = [f for f in folder.rglob("*") if f.is_file()] if folder.is_dir() else [folder]
        if len(files) != 1:
            raise BpsrunError(f"embedding.checkpoint={uri}: not a model `bpsrun pretrain register=...` logged")
        return files[0].read_bytes()


def read_pretrained(source: str, image_size: int, width: int, tracking_uri: str | None = None) -> Pretrained:
    """The checkpoint at `source` (a path or a models:/ URI); one BpsrunError line if it is missing, unreadable or
    pretrained for other inputs."""
    fix = "pass embedding.checkpoint a file `bpsrun pretrain` wrote, or null to train the embedding on the pool"
    try:
        remote = source.startswith("models:/")
        data = registered_bytes(source, tracking_uri) if remote else Path(source).expanduser().read_bytes()
        saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BpsrunError(f"embedding.checkpoint={source}: no such file; {fix}") from None
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BpsrunError(f"embedding.checkpoint={source}: not readable ({reason}); {fix}") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise BpsrunError(f"embedding.checkpoint={source}: not a {FORMAT} file; {fix}")
    wanted = {"image_size": image_size, "width": width, "in_channels": 1}
    wrong = [f"{k} {saved.get(k)} but embedding.{k}={v}" for k, v in wanted.items() if saved.get(k) != v]
    if wrong:  # in_channels: bpsrun's images are single-channel, so that one can only be fixed by pretraining again
        raise BpsrunError(
            f"embedding.checkpoint={source}: pretrained with {'; '.join(wrong)}; set embedding.image_size and "
            f"embedding.width to the checkpoint's, or pretrain again with yours"
        )
    return Pretrained(source, bytes_digest(data), saved["state_dict"], int(saved["epochs"]), int(saved["images"]))


class SSLEmbedding:
    """embedding=simclr or vicreg (or any embedding/method): computed once per pool, seed and settings, shared by campaigns.

    The embedding uses no labels, so campaigns that differ only in strategy or learner share it: the first computes
    it and its backbone into `paths.data/embeddings/` (under a lock, for parallel sweep jobs) and each campaign
    keeps its own copy (embeddings/ssl.npy and ssl.pt). A `checkpoint` (bpsrun pretrain's file) replaces the
    training: it is read and checked when the part is built, before the campaign writes anything.
    """

    def __init__(
        self,
        context: EmbedContext,
        image_size: int,
        epochs: int,
        batch_size: int,
        width: int,
        lr: float,
        augment: Mapping[str, Any],
        method: Mapping[str, Any],
        checkpoint: str | None = None,
        tracking_uri: str | None = None,
    ):
        self.context, self.image_size = context, int(image_size)
        self.settings = SSLSettings.of(epochs, batch_size, width, lr, augment, method)
        size, width = self.image_size, self.settings.width
        self.pretrained = read_pretrained(str(checkpoint), size, width, tracking_uri) if checkpoint else None

    @cached_property
    def key(self) -> dict[str, Any]:
        """What the embedding is: the pool, seed and settings (or checkpoint), and the numerics that made it. Read
        once, on first use (after the pool exists): every embed() and backbone() call checks the copies by it."""
        made = asdict(self.settings) if self.pretrained is None else {"checkpoint": self.pretrained.digest}
        return {**self.context.cache_key(), "embedding": {"image_size": self.image_size, **made}}

    def shared(self) -> Path:
        """The shared cache entry (.npy features, .pt backbone) of this key."""
        return self.context.shared_dir / f"ssl-{stable_hash(self.key)}"

    def settings_digest(self) -> str:
        """What the campaign's copies stand for: the key less its numerics (a campaign resumed with another thread
        count keeps its embedding: bpsrun.numerics warns about the floats)."""
        return stable_hash({k: v for k, v in self.key.items() if k != "numerics"})

    def network(self, stack: PoolStack) -> nn.Module:
        """The backbone the pool's features come from: the checkpoint's, else the objective trained on the pool."""
        ctx, p = self.context, self.pretrained
        if p is None:
            log.info("embedding %d pool images with %s (once per pool and seed)", len(stack), self.settings.method_name)
            return train_ssl(stack, ctx.trainers, self.settings, ctx.seed).backbone
        log.info(
            "embedding %d pool images with the pretrained backbone %s (%d images, %d epochs; no self-supervised training)",
            len(stack), p.source, p.images, p.epochs,
        )  # fmt: skip
        net = ssl_backbone(self.settings.width)
        net.load_state_dict(p.state_dict)
        return net

    def fetch(self) -> None:
        """The campaign's copies of the embedding and its backbone, computed into the shared cache the first time,
        and replaced (with a warning) when the embedding's settings or checkpoint changed since they were made."""
        ctx, layout = self.context, self.context.layout
        digest = self.settings_digest()
        kept = layout.ssl_key.read_text() if layout.ssl_key.exists() else None  # None: a campaign older than keys
        changed = kept not in (None, digest)
        if layout.ssl_embeddings.exists() and layout.ssl_backbone.exists() and not changed:
            return
        if changed:
            log.warning(
                "the embedding's settings changed since this campaign computed it (%s, now %s): rounds from here "
                "on select on the new embedding", kept[:12], digest[:12]
            )  # fmt: skip
        stem = self.shared()
        npy, pt = stem.with_suffix(".npy"), stem.with_suffix(".pt")
        with shared_lock(stem.with_suffix(".lock")):
            if not (npy.exists() and pt.exists()):
                stack = ctx.pool_images(self.image_size)
                net = self.network(stack)
                with atomic_file(pt) as tmp:
                    torch.save(net.state_dict(), tmp)
                with atomic_file(npy) as tmp, open(tmp, "wb") as f:
                    np.save(f, features(net, stack, ctx.trainers))
        for source, target in ((npy, layout.ssl_embeddings), (pt, layout.ssl_backbone)):
            if changed or not target.exists():  # a campaign older than the backbone keeps its embedding
                with atomic_file(target) as tmp:
                    shutil.copyfile(source, tmp)
        with atomic_file(layout.ssl_key) as tmp:
            tmp.write_text(digest)

    def embed(self, round_: int) -> np.ndarray:
        self.fetch()
        return np.load(self.context.layout.ssl_embeddings)

    def backbone(self) -> nn.Module:
        self.fetch()
        net = ssl_backbone(self.settings.width)
        net.load_state_dict(torch.load(self.context.layout.ssl_backbone, map_location="cpu", weights_only=True))
        return net.eval()
