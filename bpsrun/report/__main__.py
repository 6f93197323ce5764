"""`python -m bpsrun.report SWEEP_DIR [--no-mlflow]`: (re)build the report of an existing sweep folder."""

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
    args = parser.parse_args(argv)
    try:
        build_report(args.sweep_dir, log_to_mlflow=not args.no_mlflow)
    except BpsrunError as exc:
        print(f"bpsrun: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
