"""`python -m bpsrun.report SWEEP_DIR [--baseline ARM] [--no-mlflow]`: (re)build the report of a sweep folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bpsrun.errors import BpsrunError
from bpsrun.report.build import build_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bpsrun.report", description=__doc__)
    parser.add_argument(
        "sweep_dir", type=Path, help="a multirun folder, e.g. outputs/multirun/compare_strategies/<time>"
    )
    parser.add_argument("--no-mlflow", action="store_true", help="write the files only; log nothing to MLflow")
    parser.add_argument(
        "--baseline",
        metavar="ARM",
        help="pair every arm with this one (an arm name as the table prints it, e.g. small_cnn/tutorial); "
        "default: the sweep's report.baseline, else each arm's selection=random counterpart",
    )
    args = parser.parse_args(argv)
    try:
        build_report(args.sweep_dir, log_to_mlflow=not args.no_mlflow, baseline=args.baseline)
    except BpsrunError as exc:
        print(f"bpsrun: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
