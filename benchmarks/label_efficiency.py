"""Label efficiency: a comparison sweep end to end (`python -m bpsrun -m experiment=...`), and its report tables.

Usage: python benchmarks/label_efficiency.py [--experiment compare_strategies|compare_recipes|compare_annotators]
           [--task binary|three_class] [--outputs DIR] [--reuse] [--seeds N] [OVERRIDE ...]
Runs the sweep into a fresh DIR (default outputs/benchmarks/<experiment>[-<task>]: its own data, embeddings and
MLflow store, so the time is a cold start), timing it, and records its section of RESULTS.md; --reuse records an
already finished sweep in DIR instead (its timing.json holds the wall time measured when it ran). --seeds N and
extra Hydra overrides make a trial run (e.g. `--seeds 2 round=2`): its section is printed, not recorded.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

from common import REPO, record, run_measured

EXPERIMENTS = {
    "compare_strategies": (
        "Each arm is a selection strategy under the same learner and training budget, paired by seed with random "
        "selection."
    ),
    "compare_recipes": (
        "Each arm is a whole recipe (conf/recipe/: learner and strategy): the seed tutorial's (`small_cnn/tutorial`: "
        "CNN from scratch, k-center cold start, then entropy) and bpsrun's (a linear probe on the frozen embedding, "
        "with its best strategy and with random), paired by seed with the tutorial's."
    ),
    "compare_annotators": (
        "Each arm is a selection strategy with two simulated annotators who err at different rates, the same "
        "number of annotations per round in every arm, paired by seed with random selection: `activelab` may "
        "re-label a labeled image (by the annotator who has not labeled it), `active` and `random` label new "
        "images only; all train on CROWDLAB's consensus."
    ),
}
EXTRA_BASELINES = {"compare_recipes": ["linear_probe/random"]}  # also: what the strategy adds under bpsrun's learner


def sweep_command(experiment: str, task: str, outputs: Path, trial: list[str]) -> list[str]:
    chosen = [f"experiment={experiment}", *([f"task={task}"] if task != "binary" else [])]
    return [sys.executable, "-m", "bpsrun", "-m", *chosen, f"paths.outputs={outputs}", *trial]


def run_sweep(command: list[str], outputs: Path) -> dict:
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


def report(sweep: Path, baseline: str | None = None) -> str:
    """The sweep's report.md, rebuilt by the current code; another baseline writes files only (no MLflow)."""
    extra = ["--no-mlflow", "--baseline", baseline] if baseline else []
    command = [sys.executable, "-m", "bpsrun.report", str(sweep), *extra]
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)  # the table comes back in the body
    return (sweep / "report" / "report.md").read_text().strip()


def shape(sweep: Path) -> str:
    """`8 arms x 10 seeds, 50..200 labels` from the report's summary.csv."""
    rows = list(csv.DictReader((sweep / "report" / "summary.csv").open()))
    budgets = sorted(int(k.split("_")[1]) for k in rows[0] if k.startswith("acc_") and k.endswith("_mean"))
    seeds = max(int(r["seeds"]) for r in rows)
    return f"{len(rows)} arms x {seeds} seeds, {budgets[0]}..{budgets[-1]} labels in {len(budgets)} rounds"


def body(experiment: str, sweep: Path, timing: dict) -> list[str]:
    tables = [report(sweep, b) for b in EXTRA_BASELINES.get(experiment, [])]
    tables.insert(0, report(sweep))  # last: the sweep folder and MLflow keep the experiment's own baseline
    where = sweep.relative_to(REPO) if sweep.is_relative_to(REPO) else sweep
    command = " ".join(a for a in timing["command"].split() if not a.startswith("paths.outputs="))
    return [
        f"`python -m {command}` at commit {timing['commit']} ({shape(sweep)}, 2 joblib workers with 1 "
        f"torch thread each), cold (own data, embeddings and MLflow store): **{timing['wall_s'] / 60:.1f} min "
        f"wall**, peak memory of the largest process {timing['peak_rss_mib']:.0f} MiB.",
        "",
        EXPERIMENTS[experiment],
        "Validation accuracy (mean ± sd over seeds) at each label budget; AULC is the area under the learning "
        "curve divided by the label range (its mean accuracy); the paired columns and the 95 % percentile-"
        "bootstrap intervals are explained under each table.",
        "",
        *[line for table in tables for line in (table, "")],
        f"Learning curves with 95 % bands, and the paired differences: `{where}/report/learning_curves.png`.",
    ]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiment", choices=sorted(EXPERIMENTS), default="compare_strategies")
    parser.add_argument("--task", choices=["binary", "three_class"], default="binary")
    parser.add_argument("--outputs", type=Path, help="default: outputs/benchmarks/<experiment>[-<task>]")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--seeds", type=int, help="a trial run with seeds 0..N-1")
    args, overrides = parser.parse_known_args(argv)
    trial = ([f"seed=range(0,{args.seeds})"] if args.seeds else []) + overrides
    folder = args.experiment + ("" if args.task == "binary" else f"-{args.task}")
    outputs = args.outputs or REPO / "outputs" / "benchmarks" / folder
    if args.reuse:
        timing = json.loads((outputs / "timing.json").read_text())
    else:
        if outputs.exists():
            sys.exit(f"{outputs} exists: remove it for a cold run, or pass --reuse to record it")
        timing = run_sweep(sweep_command(args.experiment, args.task, outputs, trial), outputs)
    sweep = sorted((outputs / "multirun" / args.experiment).iterdir())[-1]
    title = f"Label efficiency: experiment={args.experiment}" + ("" if args.task == "binary" else f" task={args.task}")
    lines = body(args.experiment, sweep, timing)
    if trial:
        print("\n".join([f"## {title} (trial: {' '.join(trial)}; not recorded)", "", *lines]))
    else:
        record(title, lines)


if __name__ == "__main__":
    main(sys.argv[1:])
