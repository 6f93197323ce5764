"""Label efficiency: `python -m bpsrun -m experiment=compare_strategies` end to end, and its report table.

Usage: python benchmarks/label_efficiency.py [--outputs DIR] [--reuse]
Runs the sweep into a fresh DIR (default outputs/benchmarks/compare_strategies: its own data, embeddings and
MLflow store, so the time is a cold start), timing it; --reuse records an already finished sweep in DIR instead
(its timing.json holds the wall time measured when it ran).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import REPO, record, run_measured

TITLE = "Label efficiency: experiment=compare_strategies"


def run_sweep(outputs: Path) -> dict:
    command = [sys.executable, "-m", "bpsrun", "-m", "experiment=compare_strategies", f"paths.outputs={outputs}"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    m = run_measured(command)
    timing = {
        "command": " ".join(command[2:]),
        "commit": commit.strip(),
        "wall_s": m.wall_s,
        "peak_rss_mib": m.peak_rss_mib,
    }
    (outputs / "timing.json").write_text(json.dumps(timing, indent=2))
    return timing


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outputs", type=Path, default=REPO / "outputs" / "benchmarks" / "compare_strategies")
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args(argv)
    if args.reuse:
        timing = json.loads((args.outputs / "timing.json").read_text())
        sweep = sorted((args.outputs / "multirun" / "compare_strategies").iterdir())[-1]
        subprocess.run([sys.executable, "-m", "bpsrun.report", str(sweep)], cwd=REPO, check=True)  # current code
    else:
        if args.outputs.exists():
            sys.exit(f"{args.outputs} exists: remove it for a cold run, or pass --reuse to record it")
        timing = run_sweep(args.outputs)
    (sweep,) = sorted((args.outputs / "multirun" / "compare_strategies").iterdir())[-1:]
    table = (sweep / "report" / "report.md").read_text().strip()
    body = [
        f"`python -m bpsrun -m experiment=compare_strategies` at commit {timing['commit']} (6 strategies x 5 "
        f"seeds, 4 rounds of 50 labels, 2 joblib workers with 1 torch thread each), cold (own data, embeddings "
        f"and MLflow store): "
        f"**{timing['wall_s'] / 60:.1f} min wall**, peak memory of the largest process "
        f"{timing['peak_rss_mib']:.0f} MiB.",
        "",
        "Validation accuracy (mean ± sd over seeds) at each label budget; AULC is the area under the learning "
        "curve divided by the label range (its mean accuracy); AULC - random is paired by seed; labels to 95 % is "
        "the first budget reaching 95 % of the same seed's full-supervision accuracy (mean over the seeds that "
        "reached it, and how many did).",
        "",
        table,
        "",
        f"Learning curves: `{sweep.relative_to(REPO) if sweep.is_relative_to(REPO) else sweep}/report/"
        "learning_curves.png`.",
    ]
    record(TITLE, body)


if __name__ == "__main__":
    main(sys.argv[1:])
