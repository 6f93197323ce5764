"""One round on pools of 5,000, 20,000 and 80,000 synthetic images: wall time and peak memory per size.

Usage: python benchmarks/scaling.py [--sizes 5000 20000 80000] [--outputs DIR] [--no-record]
For each size, in a fresh outputs folder: the dataset is generated first (timed apart: a campaign round does not
generate data), then `python -m bpsrun round=1 dataset.num_images=N embedding=pixels` runs cold: prepare (the
manifest, Lightly metadata for every pool image, the decoded image caches), embed (the pixels' PCA), select
(active's k-center cold start), label (the oracle), train (30 labels), predict the whole pool, export its Lightly
predictions and log the round to MLflow. `embedding=pixels` because SimCLR's training costs epochs x pool images
of network passes (hours at 80,000 on 2 CPU cores, a GPU's job); its inference streams the pool like prediction.
The slope is the least-squares exponent b of wall = a * N^b over the sizes: b <= 1 is no worse than linear.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from common import REPO, Measured, record, run_measured

GENERATE = (
    "import sys; from bpsrun.data.sources import synthetic; "
    "synthetic(num_images=int(sys.argv[1]), seed=1234, cache_dir=sys.argv[2], classes=['track', 'no track'])"
)
MEMORY_BUDGET_GIB = 4.0


def round_command(n: int, outputs: Path) -> list[str]:
    return [sys.executable, "-m", "bpsrun", "round=1", f"dataset.num_images={n}", "embedding=pixels",
            f"paths.outputs={outputs}"]  # fmt: skip


def measure(n: int, root: Path) -> tuple[float, Measured]:
    outputs = root / f"n{n}"
    shutil.rmtree(outputs, ignore_errors=True)
    start = time.perf_counter()
    run_measured([sys.executable, "-c", GENERATE, str(n), str(outputs / "data")])
    generated = time.perf_counter() - start
    return generated, run_measured(round_command(n, outputs))


def slope(sizes: list[int], walls: list[float]) -> float:
    return float(np.polyfit(np.log(sizes), np.log(walls), 1)[0])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 80000])
    parser.add_argument("--outputs", type=Path, default=REPO / "outputs" / "benchmarks" / "scaling")
    parser.add_argument("--no-record", action="store_true", help="print the section, do not write RESULTS.md")
    args = parser.parse_args(argv)
    rows, walls = [], []
    for n in args.sizes:
        generated, m = measure(n, args.outputs)
        walls.append(m.wall_s)
        gib = m.peak_rss_mib / 1024
        rows.append(
            f"| {n:,} | {generated:.0f} s | **{m.wall_s:.0f} s** | {1000 * m.wall_s / n:.1f} ms | {gib:.2f} GiB |"
        )
        print(rows[-1], flush=True)
    b = slope(args.sizes, walls)
    peak = max(float(r.split("|")[5].split()[0]) for r in rows)
    body = [
        "One cold round per pool size (`benchmarks/scaling.py`): `python -m bpsrun round=1 dataset.num_images=N "
        "embedding=pixels paths.outputs=DIR`, after the dataset is generated. "
        "Wall time is the round's command; peak memory the largest process's resident set.",
        "",
        "| pool images | generating the dataset | one round | per image | peak memory |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Slope (least-squares exponent of wall time against pool size): **{b:.2f}** "
        f"({'no worse than linear' if b <= 1.0 else 'WORSE than linear: target not met'}); peak memory "
        f"{peak:.2f} GiB ({'within' if peak < MEMORY_BUDGET_GIB else 'OVER'} the {MEMORY_BUDGET_GIB:.0f} GiB budget).",
    ]
    if args.no_record:
        print("\n".join(body))
    else:
        record("Scaling: one round by pool size", body)


if __name__ == "__main__":
    main(sys.argv[1:])
