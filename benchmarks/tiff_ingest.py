"""TIFF ingest: images per second through bpsrun's loading and normalisation path, beside bare tifffile.imread.

Usage: python benchmarks/tiff_ingest.py [--images N]
N BPS-like nuclei (uint16, Deflate, 110-175 px a side, from the embedded generator) are read in the same run by
  - `tifffile.imread` alone, file after file: the decode limit, no normalisation;
  - `load_tensor`: read + checks + percentile stretch + pad + antialiased resize to 96 px, file after file;
  - `load_stack`, the path campaigns use (a thread per core), beside imread in the same thread pool.
Best of 3 passes each, the files hot in the page cache (a campaign decodes its images once, then memory-maps).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tifffile
from common import record

from bpsrun.data.images import load_stack, load_tensor
from bpsrun.data.synthetic import SyntheticSpec, generate

SIZE = 96  # the default model's input


def best_rate(n: int, fn: Callable[[], object], passes: int = 3) -> float:
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n / min(times)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=4000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(SyntheticSpec(num_images=args.images, seed=7), Path(tmp) / "ingest")
        paths = sorted((root / "images").glob("*.tif"))
        mib = sum(p.stat().st_size for p in paths) / 2**20
        workers = os.cpu_count() or 1
        with ThreadPoolExecutor(workers) as pool:
            rates = {
                "imread": best_rate(len(paths), lambda: [tifffile.imread(p) for p in paths]),
                "ours": best_rate(len(paths), lambda: [load_tensor(p, SIZE) for p in paths]),
                "imread_pool": best_rate(len(paths), lambda: list(pool.map(tifffile.imread, paths))),
                "ours_stack": best_rate(len(paths), lambda: load_stack(paths, SIZE)),
            }
    seq, par = rates["ours"] / rates["imread"], rates["ours_stack"] / rates["imread_pool"]
    record(
        "TIFF ingest",
        [
            f"`python benchmarks/tiff_ingest.py`: {len(paths)} BPS-like uint16 Deflate TIFFs ({mib:.1f} MiB), "
            f"to {SIZE} x {SIZE} float model input; best of 3, page cache hot.",
            "",
            "| path | images/s | share of bare imread |",
            "|---|---|---|",
            f"| bare `tifffile.imread`, one thread | {rates['imread']:.0f} | 100 % |",
            f"| bpsrun `load_tensor` (read, check, normalise, pad, resize), one thread | {rates['ours']:.0f} | "
            f"**{seq:.0%}** |",
            f"| bare `tifffile.imread`, {workers} threads | {rates['imread_pool']:.0f} | 100 % |",
            f"| bpsrun `load_stack` (what campaigns run), {workers} threads | {rates['ours_stack']:.0f} | "
            f"**{par:.0%}** |",
            "",
            f"Target: at least 70 % of bare imread. {'Met' if min(seq, par) >= 0.7 else 'NOT met'} "
            f"({seq:.0%} single-threaded, {par:.0%} threaded).",
        ],
    )


if __name__ == "__main__":
    main(sys.argv[1:])
