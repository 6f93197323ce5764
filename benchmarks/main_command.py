"""The README's main command, cold and warm: wall time and peak memory.

Usage: python benchmarks/main_command.py [--outputs DIR]
Cold: `python -m bpsrun round=2` into an empty outputs folder (generates the dataset, decodes images, trains the
self-supervised embedding, two rounds). Warm: the same command as a new campaign (`campaign=warm`) in the same
folder, so the dataset and the embeddings come from the caches; the rounds themselves are trained again.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from common import REPO, Measured, record, run_measured

COMMAND = [sys.executable, "-m", "bpsrun", "round=2"]


def accuracies(m: Measured) -> str:
    """Round accuracies from the campaign's printed table (its rows: round, labeled, val acc, bal acc)."""
    rows = [line.split() for line in m.stdout.splitlines() if re.match(r"\s*\d+\s+\d+\s+[0-9.]+\s+[0-9.]+\s*$", line)]
    return " / ".join(row[2] for row in rows)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outputs", type=Path, default=REPO / "outputs" / "benchmarks" / "main_command")
    args = parser.parse_args(argv)
    shutil.rmtree(args.outputs, ignore_errors=True)
    cold = run_measured([*COMMAND, f"paths.outputs={args.outputs}"])
    warm = run_measured([*COMMAND, f"paths.outputs={args.outputs}", "campaign=warm"])
    record(
        "Main command",
        [
            "`python -m bpsrun round=2` (the README's main command: 800 synthetic images, VICReg embedding, 2 rounds of "
            "30 labels, 30 epochs each). Peak memory is the largest process's resident set.",
            "",
            "| run | wall | peak memory | val accuracy, rounds 1 / 2 |",
            "|---|---|---|---|",
            f"| cold (empty outputs/) | {cold.wall_s:.0f} s | {cold.peak_rss_mib / 1024:.2f} GiB | {accuracies(cold)} |",
            f"| warm (cached data and embeddings, new campaign) | {warm.wall_s:.0f} s | "
            f"{warm.peak_rss_mib / 1024:.2f} GiB | {accuracies(warm)} |",
        ],
    )


if __name__ == "__main__":
    main(sys.argv[1:])
