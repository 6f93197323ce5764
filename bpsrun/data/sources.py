"""Where a dataset's images, meta.csv and (optional) ground truth come from.

A dataset source is a callable returning `DatasetFiles`; `conf/dataset/<name>.yaml` names one by `_target_`
(with `_partial_: true`), so a new source is a new function and a new YAML.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig, OmegaConf

from bpsrun.data.bps import Subset, parse_meta, select_subset, write_subset
from bpsrun.data.s3 import S3Location, client, download, fetch_object, list_sizes, s3_errors, safe_path
from bpsrun.data.synthetic import SyntheticSpec, generate
from bpsrun.errors import BpsrunError

log = logging.getLogger("bpsrun")

# how a dataset is fetched, not what it is: free to change between runs of one campaign. `_target_` (and the
# `loader` key it replaced) name the code that fetches it.
TRANSPORT_KEYS = (
    "endpoint_url", "region", "anonymous", "workers", "retries", "backoff_s", "refresh_meta", "cache_dir",
    "_target_", "_partial_", "loader",
)  # fmt: skip


def dataset_identity(cfg: DictConfig) -> dict[str, Any]:
    """What `cfg.dataset` is, without how it is fetched."""
    return identity_of(OmegaConf.to_container(cfg.dataset, resolve=True))


def identity_of(dataset: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dataset.items() if k not in TRANSPORT_KEYS}


@dataclass(frozen=True)
class DatasetFiles:
    image_dir: Path
    meta_csv: Path
    truth_csv: Path | None


class DatasetSource(Protocol):
    def __call__(self) -> DatasetFiles: ...


def synthetic(*, num_images: int, seed: int, cache_dir: str, classes: Sequence[str]) -> DatasetFiles:
    spec = SyntheticSpec(num_images=int(num_images), seed=int(seed), classes=tuple(str(c) for c in classes))
    root = generate(spec, Path(cache_dir) / spec.folder_name)
    return DatasetFiles(root / "images", root / "meta.csv", root / "truth.csv")


def folder(*, path: str | None, truth_csv: str | None = None) -> DatasetFiles:
    if not path:
        raise BpsrunError("dataset=folder needs dataset.path=DIR (a folder with images and meta.csv)")
    root = Path(path)
    if not root.is_dir():
        raise BpsrunError(f"dataset.path={root}: not a folder; point it at the folder holding meta.csv and the images")
    truth = Path(truth_csv) if truth_csv else None
    if truth is not None and not truth.is_file():
        raise BpsrunError(f"dataset.truth_csv={truth}: file not found; give a CSV with columns filename,label")
    return DatasetFiles(root, root / "meta.csv", truth)


def bps(**settings: Any) -> DatasetFiles:
    """The BPS bucket: meta.csv and the subset's TIFFs mirrored into `cache_dir/<store>/<bucket>/<prefix>/`
    (`<store>`: `aws`, or the endpoint's host and port).

    A finished subset (its truth.csv exists) needs no network; `refresh_meta=true` re-reads meta.csv. The
    settings are conf/dataset/bps.yaml's keys.
    """
    cfg = OmegaConf.create(settings)
    loc = S3Location(cfg.bucket, cfg.prefix, cfg.region, cfg.endpoint_url, bool(cfg.anonymous))
    mirror = Path(cfg.cache_dir) / loc.store / loc.bucket / loc.prefix.strip("/")
    meta_path = mirror / "meta.csv"
    transfer = {"retries": int(cfg.retries), "backoff_s": float(cfg.backoff_s)}
    s3 = None
    if cfg.refresh_meta or not meta_path.is_file():
        s3 = client(loc, int(cfg.workers), int(cfg.retries))
        with s3_errors(loc, "dataset"):
            fetch_object(s3, loc, "meta.csv", meta_path, **transfer)
    meta = meta_path.read_bytes()
    source = loc.url(loc.key("meta.csv"))
    subset = Subset(
        doses=tuple(cfg.subset.doses),
        hours=tuple(float(h) for h in cfg.subset.hours),
        particles=tuple(cfg.subset.particles),
        max_images=cfg.subset.max_images,
        max_per_class=cfg.subset.max_per_class,
        seed=int(cfg.subset.seed),
        dose_levels={k: dict(v) for k, v in cfg.dose_levels.items()},
    )
    rows = select_subset(parse_meta(meta, source), subset, source)
    for row in rows:
        safe_path(mirror, row["filename"], source)
    folder = Path(cfg.cache_dir) / loc.store / "subsets" / loc.bucket / loc.prefix.strip("/") / subset.key(meta)
    if not (folder / "truth.csv").is_file():
        s3 = s3 or client(loc, int(cfg.workers), int(cfg.retries))
        with s3_errors(loc, "dataset"):
            sizes = list_sizes(s3, loc)
        absent = [r["filename"] for r in rows if r["filename"] not in sizes]
        if absent:
            log.warning(
                "%d files listed in %s are not in the bucket (first: %s); leaving them out",
                len(absent),
                source,
                absent[0],
            )
            rows = [r for r in rows if r["filename"] in sizes]
        download(s3, loc, [r["filename"] for r in rows], mirror, sizes, workers=int(cfg.workers), **transfer)
        write_subset(folder, rows, dict(cfg.oracle.classes), cfg.oracle.column)
    return DatasetFiles(mirror, folder / "meta.csv", folder / "truth.csv")
