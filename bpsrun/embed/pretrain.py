"""`bpsrun pretrain images=DIR out=FILE [embedding.* trainer.* overrides]`: a self-supervised backbone (VICReg by default) trained once on every image of an
archive folder, its backbone written to FILE (selfsup.FORMAT) for any campaign's `embedding.checkpoint=FILE`.

The training state is saved after every epoch in FILE.ckpt/ (a Lightning checkpoint, with the decoded images): the
same command run again after a kill or SIGTERM resumes from the last saved epoch. FILE.ckpt/ goes once FILE is written.
With `register=NAME`, FILE is also logged to MLflow (embedding.tracking_uri) as a new version of the registered model
NAME, for `embedding.checkpoint=models:/NAME/VERSION`.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from bpsrun.data.pool import PoolStack
from bpsrun.data.prepare import image_cache
from bpsrun.embed.selfsup import FORMAT, SelfSupervised, SSLEmbedding, SSLSettings, tracking_store, train_ssl
from bpsrun.errors import BpsrunError
from bpsrun.files import atomic_file, atomic_write_text, stable_hash
from bpsrun.model.trainers import Trainers
from bpsrun.serve.predict import image_files
from bpsrun.signals import sigterm_exits

log = logging.getLogger("bpsrun")

EXPERIMENT = "bpsrun-pretrain"
ARTIFACT = "backbone"

SSL = f"{SSLEmbedding.__module__}.{SSLEmbedding.__qualname__}"


class Resumed(pl.Callback):
    """Says where a resumed fit starts (Lightning restores the epoch before training starts)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch:
            log.info("pretraining resumed: %d of %d epochs done", trainer.current_epoch, trainer.max_epochs)


def state_dir(out: Path) -> Path:
    return out.with_name(out.name + ".ckpt")


def claim_state(state: Path, key: str) -> None:
    """FILE.ckpt/ for this run's images and settings; one left by a run with others is refused, not resumed."""
    stamp = state / "settings"
    if stamp.exists() and stamp.read_text() != key:
        raise BpsrunError(
            f"{state}: an unfinished pretraining of other images or settings; rerun that command to finish it, "
            f"or delete {state} to start this one"
        )
    atomic_write_text(stamp, key)


def write_backbone(out: Path, model: SelfSupervised, image_size: int, settings: SSLSettings, images: int) -> None:
    saved = {
        "format": FORMAT,
        "method": settings.method_name.lower(),  # the conf/embedding/method/ choice
        "image_size": image_size,
        "in_channels": 1,
        "width": settings.width,
        "state_dict": {k: v.cpu() for k, v in model.backbone.state_dict().items()},
        "epochs": settings.epochs,
        "images": images,
    }
    with atomic_file(out) as tmp:
        torch.save(saved, tmp)


def register(out: Path, name: str, tracking_uri: str, params: dict[str, Any]) -> str:
    """`out` in a run of the experiment bpsrun-pretrain, registered as a new version of `name`: its models:/ URI."""
    from mlflow.exceptions import MlflowException  # here: a run that registers nothing imports no MLflow

    from bpsrun.tracking.store import log_params, open_experiment

    sqlite = tracking_uri.startswith("sqlite:///")  # artifacts beside the store, as a campaign's (outputs/mlartifacts)
    root = Path(tracking_uri.removeprefix("sqlite:///")).parent if sqlite else out.parent
    client, experiment = open_experiment(tracking_uri, EXPERIMENT, root / "mlartifacts")
    run_id = client.create_run(experiment, run_name=f"pretrain {name}", tags={"bpsrun.kind": "pretrain"}).info.run_id
    log_params(client, run_id, params)
    client.log_artifact(run_id, str(out), ARTIFACT)
    client.set_terminated(run_id)
    try:
        client.create_registered_model(name, tags={"bpsrun.kind": "pretrain"})
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(name, f"runs:/{run_id}/{ARTIFACT}", run_id).version
    return f"models:/{name}/{version}"


def fit(cfg: DictConfig, files: list[Path], size: int, settings: SSLSettings, state: Path) -> SelfSupervised:
    """The self-supervised objective on `files`, its state in `state`/ after every epoch, resumed from there if a run left one."""
    # epochs are not part of what the state is for: a resumed run may be given more of them
    made = {"images": [str(p.resolve()) for p in files], "image_size": size, "seed": cfg.seed, **asdict(settings)}
    claim_state(state, stable_hash({**made, "epochs": None}))
    cache = image_cache([{"path": str(p)} for p in files], size, state / f"images-{size}.npy")
    last = state / "last.ckpt"
    epochs = ModelCheckpoint(dirpath=state, filename=last.stem, enable_version_counter=False)
    with warnings.catch_warnings():  # the folder holds the decoded images, and on a resume the last.ckpt it replaces
        warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
        return train_ssl(
            PoolStack(cache, list(range(len(files)))),
            Trainers(cfg.trainer),
            settings,
            int(cfg.seed),
            last if last.exists() else None,
            callbacks=[epochs, Resumed()],
            enable_checkpointing=True,
        )


def pretrain(cfg: DictConfig) -> Path:
    """Train the self-supervised embedding on every image of `cfg.images` (resuming FILE.ckpt/ if there is one); the written `cfg.out`."""
    for key in ("images", "out"):
        if OmegaConf.is_missing(cfg, key):
            raise BpsrunError(f"bpsrun pretrain needs {key}=...: bpsrun pretrain images=DIR out=FILE")
    if cfg.embedding._target_ != SSL:
        raise BpsrunError(
            f"bpsrun pretrain trains a self-supervised embedding (embedding=vicreg or simclr), not embedding={cfg.embedding.name}"
        )
    files, out = image_files(Path(cfg.images)), Path(cfg.out)
    size, settings = int(cfg.embedding.image_size), SSLSettings.of(**cfg.embedding)
    log.info(
        "pretraining %s on %d images of %s for %d epochs", settings.method_name, len(files), cfg.images, settings.epochs
    )
    model = fit(cfg, files, size, settings, state_dir(out))
    write_backbone(out, model, size, settings, len(files))
    shutil.rmtree(state_dir(out))
    uri = str(out)
    if cfg.register:
        params = {"images": len(files), "folder": str(cfg.images), "image_size": size, "seed": cfg.seed}
        store = tracking_store(cfg.embedding.tracking_uri)
        uri = register(out, str(cfg.register), store, {**params, **asdict(settings)})
    log.info("pretrained backbone written to %s: use it with embedding.checkpoint=%s", out, uri)
    return out


def run(cfg: DictConfig) -> Path:
    """The command: SIGTERM stops it as an exception (bpsrun.signals), after the last epoch's checkpoint."""
    with sigterm_exits():
        return pretrain(cfg)
