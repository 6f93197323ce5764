"""Full supervision: the campaign's model trained on every training-pool image with its true label.

It is the ceiling a learning curve is read against ("labels needed to reach 95 % of full supervision"). It is
computed once per dataset, split, model, embedding, trainer and seed into its own folder and never feeds a campaign: campaign
models only ever see the labels of images their strategy selected.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bpsrun.data.manifest import read_meta
from bpsrun.data.sources import DatasetFiles, dataset_identity
from bpsrun.errors import BpsrunError
from bpsrun.files import bytes_digest, stable_hash
from bpsrun.identity import split_identity

# settings that change speed, not the trained model (threads and cpu_kernels change its floats: bpsrun.numerics)
RUNTIME_KEYS = ("accelerator", "devices", "eval_batch_size")


def embedding_identity(embedding: dict) -> dict:
    """The embedding config, with a checkpoint file named by its bytes: a file pretrained again at the same path is
    another embedding. linear_probe and finetune build on it. A models:/ URI stays as written (a version's file
    never changes; an alias is read as the name it is)."""
    checkpoint = embedding.get("checkpoint")
    path = Path(str(checkpoint)).expanduser()
    if checkpoint and not str(checkpoint).startswith("models:/") and path.is_file():
        embedding = {**embedding, "checkpoint": bytes_digest(path.read_bytes())}
    return embedding


def reference_dir(cfg: DictConfig) -> Path:
    """`reference.dir/<dataset>-<model>-s<seed>-<digest>`: campaigns that would train the same model share it."""
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    key = {
        "dataset": dataset_identity(cfg),
        "split": split_identity(cfg),
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "trainer": {k: v for k, v in trainer.items() if k not in RUNTIME_KEYS and k != "lightning"},
        "embedding": embedding_identity(OmegaConf.to_container(cfg.embedding, resolve=True)),
        "seed": int(cfg.seed),
    }
    return Path(cfg.reference.dir) / f"{cfg.dataset.name}-{cfg.model.name}-s{cfg.seed}-{stable_hash(key)[:8]}"


def check_truth(files: DatasetFiles, truth: dict[str, str]) -> None:
    """Full supervision needs every image's label: checked before the campaign writes anything."""
    missing = [r["filename"] for r in read_meta(files.meta_csv)[1] if r["filename"] not in truth]
    if missing:
        raise BpsrunError(
            f"reference.enabled=true trains on every pool image, but {files.truth_csv} has no label for "
            f"{len(missing)} images of {files.meta_csv} (e.g. {missing[0]}); add them or set reference.enabled=false"
        )
