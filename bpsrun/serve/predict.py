"""`bpsrun predict --model URI --images DIR --out DIR`: classify a folder of images with a logged bpsrun model.

Every .tif/.tiff/.png file directly in DIR (sorted by name; meta.csv and other files are ignored) goes through the
model (`models:/<campaign>@latest` or `@current`, `runs:/<run>/model` or a local model folder). It writes Lightly's prediction
format into DIR_OUT/.lightly/predictions/ (the campaign's task name) and DIR_OUT/predictions.csv (filename, label,
one probability column per class). Also `python -m bpsrun.serve.predict`.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import sys
import warnings
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException

from bpsrun.checks import redacted
from bpsrun.errors import BpsrunError
from bpsrun.export.predictions import write_predictions
from bpsrun.files import atomic_write_text
from bpsrun.numerics import KERNELS, pin_cpu_kernels
from bpsrun.serve.pyfunc import quiet_artifact_copies

IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
DEFAULT_TRACKING_URI = "sqlite:///outputs/mlflow.db"  # the campaign's default tracking.uri, run from the same folder


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bpsrun predict", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model URI, e.g. models:/synthetic-active-s0@current")
    parser.add_argument("--images", required=True, type=Path, help="folder of .tif/.tiff/.png images")
    parser.add_argument("--out", required=True, type=Path, help="folder for predictions.csv and .lightly/")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI),
        help="the MLflow store holding the model (default: $MLFLOW_TRACKING_URI, else %(default)s)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default %(default)s, a campaign's trainer.threads)"
    )
    parser.add_argument(
        "--cpu-kernels",
        choices=sorted(KERNELS),
        default="avx2",
        help="CPU kernels, as trainer.cpu_kernels (default %(default)s: the campaign's floats on any AVX2 CPU)",
    )
    return parser.parse_args(argv)


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BpsrunError(f"{folder}: not a folder; pass --images DIR, a folder of .tif/.tiff/.png images")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BpsrunError(
            f"{folder}: no images (.tif, .tiff, .png) in this folder; pass --images the folder holding them"
        )
    stems: dict[str, Path] = {}
    for path in files:  # Lightly names a prediction file by the image's stem
        if path.stem in stems:
            raise BpsrunError(f"{stems[path.stem]} and {path.name}: one name, two images; rename one of them")
        stems[path.stem] = path
    return files


def load_model(uri: str, tracking_uri: str) -> tuple[mlflow.pyfunc.PyFuncModel, str, list[str]]:
    """The pyfunc model at `uri`, its task and classes (from the metadata bpsrun logs with it)."""
    where = redacted(tracking_uri)
    store = Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite:///") else None
    if uri.startswith(("models:/", "runs:/")) and store is not None and not store.exists():
        raise BpsrunError(
            f"{uri}: not found: no MLflow store at {where}; pass --tracking-uri the campaign's tracking.uri"
        )
    mlflow.set_tracking_uri(tracking_uri)
    try:
        model = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        reason = str(getattr(exc, "message", exc)).splitlines()[0]
        raise BpsrunError(
            f"{uri}: no such model in {where} ({reason}); check the name, or pass --tracking-uri"
        ) from None
    meta = model.metadata.metadata or {}
    if "task" not in meta or "classes" not in meta:
        raise BpsrunError(f"{uri}: not a bpsrun model (its MLmodel has no task and classes metadata)")
    return model, str(meta["task"]), [str(c) for c in meta["classes"]]


def predict_folder(uri: str, images: Path, out: Path, tracking_uri: str) -> pd.DataFrame:
    files = image_files(images)
    model, task, classes = load_model(uri, tracking_uri)
    table = model.predict(pd.DataFrame({"path": [str(p) for p in files]}))
    names = [p.name for p in files]
    write_predictions(out / ".lightly" / "predictions", task, classes, names, table[classes].to_numpy(np.float64))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["filename", "label", *classes])
    for name, (_, row) in zip(names, table.iterrows()):
        writer.writerow([name, row["label"], *(repr(float(row[c])) for c in classes)])
    atomic_write_text(out / "predictions.csv", text.getvalue())
    return table


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)  # tips, device banners
    quiet_artifact_copies()
    pin_cpu_kernels(args.cpu_kernels)  # before the model's first kernel: the campaign's numerics (bpsrun.numerics)
    torch.set_num_threads(args.threads)
    try:
        table = predict_folder(args.model, args.images, args.out, args.tracking_uri)
    except BpsrunError as exc:
        print(f"bpsrun: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    print(f"bpsrun predict: {len(table)} images -> {args.out / 'predictions.csv'} and {args.out / '.lightly'}/")


if __name__ == "__main__":
    main()
