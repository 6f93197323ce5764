"""Every benchmark in one recorded run, each replacing its own section of benchmarks/RESULTS.md.

Usage: python benchmarks/run_all.py [--reuse-sweep DIR]
Order: TIFF ingest, prediction export, selection scaling, the main command (cold, warm), then label efficiency
(the compare_strategies sweep, ~50 min on 2 cores). --reuse-sweep DIR records a sweep that label_efficiency.py
already ran into DIR (with its measured wall time) instead of running it again.
"""

from __future__ import annotations

import argparse
import sys

import label_efficiency
import main_command
import prediction_export
import selection_scaling
import tiff_ingest


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reuse-sweep", default=None)
    args = parser.parse_args(argv)
    tiff_ingest.main([])
    prediction_export.main([])
    selection_scaling.main()
    main_command.main([])
    label_efficiency.main(["--outputs", args.reuse_sweep, "--reuse"] if args.reuse_sweep else [])


if __name__ == "__main__":
    main(sys.argv[1:])
