"""Prediction export: Lightly prediction files written per second at the size of the full BPS bucket.

Usage: python benchmarks/prediction_export.py [--images N]
`write_predictions` (one `<stem>.json` per image, schema, tasks.json, all in a scratch folder renamed into place)
for N = 77,000 BPS-style names, beside a bare loop that writes the same bytes with open().write: the file
system's limit for this many small files. Then `read_predictions` back, as the next round's selection does.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import record

from bpsrun.export.predictions import read_predictions, write_predictions

CLASSES = ["track", "no track"]


def names(n: int) -> list[str]:
    return [
        f"P{240 + i % 40}_7366500{i % 7}-{'ABCDEFGH'[i % 8]}{i % 12 + 1}_{i // 96:04d}_{i % 96:03d}_proj.tif"
        for i in range(n)
    ]


def bare(folder: Path, files: list[str], probs: np.ndarray) -> None:
    task_dir = folder / "bps-classification"
    task_dir.mkdir(parents=True)
    for name, p in zip(files, probs):
        record = {"file_name": name, "predictions": [{"category_id": int(p.argmax()), "probabilities": p.tolist()}]}
        with open(task_dir / f"{name[:-4]}.json", "w") as f:
            f.write(json.dumps(record))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=77_000)
    args = parser.parse_args(argv)
    files = names(args.images)
    rng = np.random.default_rng(0)
    p = rng.random(args.images)
    probs = np.stack([p, 1 - p], axis=1)
    with tempfile.TemporaryDirectory(dir=Path.cwd() / "outputs") as tmp:
        ours = timed(lambda: write_predictions(Path(tmp) / "ours", "bps-classification", CLASSES, files, probs))
        ref = timed(lambda: bare(Path(tmp) / "bare", files, probs))
        back = timed(lambda: read_predictions(Path(tmp) / "ours", "bps-classification", files))
        check = np.allclose(read_predictions(Path(tmp) / "ours", "bps-classification", files[:1000]), probs[:1000])
    n = args.images
    record(
        "Prediction export",
        [
            f"`python benchmarks/prediction_export.py`: {n:,} images, 2 classes, into outputs/ on local disk.",
            "",
            "| step | seconds | files/s |",
            "|---|---|---|",
            f"| `write_predictions` (atomic folder, schema, tasks.json) | {ours:.1f} | **{n / ours:,.0f}** |",
            f"| bare loop writing the same JSON bytes | {ref:.1f} | {n / ref:,.0f} |",
            f"| `read_predictions` of all files (next round's selection) | {back:.1f} | {n / back:,.0f} |",
            "",
            f"Ours / bare: {ref / ours:.0%}. Round trip of the first 1,000 files equal: {check}.",
        ],
    )


if __name__ == "__main__":
    main(sys.argv[1:])
