"""Where a dataset's images, meta.csv and (optional) ground truth come from. `dataset.loader` names one of these."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from bpsrun.data.synthetic import SyntheticSpec, generate
from bpsrun.errors import BpsrunError


@dataclass(frozen=True)
class DatasetFiles:
    image_dir: Path
    meta_csv: Path
    truth_csv: Path | None


def synthetic(cfg: DictConfig) -> DatasetFiles:
    spec = SyntheticSpec(num_images=int(cfg.num_images), seed=int(cfg.seed))
    root = generate(spec, Path(cfg.cache_dir) / f"synthetic-n{spec.num_images}-s{spec.seed}")
    return DatasetFiles(root / "images", root / "meta.csv", root / "truth.csv")


def folder(cfg: DictConfig) -> DatasetFiles:
    if not cfg.path:
        raise BpsrunError("dataset=folder needs dataset.path=DIR (a folder with images and meta.csv)")
    root = Path(cfg.path)
    if not root.is_dir():
        raise BpsrunError(f"dataset.path={root}: not a folder; point it at the folder holding meta.csv and the images")
    truth = Path(cfg.truth_csv) if cfg.truth_csv else None
    if truth is not None and not truth.is_file():
        raise BpsrunError(f"dataset.truth_csv={truth}: file not found; give a CSV with columns filename,label")
    return DatasetFiles(root, root / "meta.csv", truth)
