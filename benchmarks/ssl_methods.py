"""Self-supervised methods at equal compute: SimCLR, BYOL, VICReg and DINO (`embedding/method=`) judged by the
linear probe on their frozen embedding, on the default synthetic dataset.

Usage: python benchmarks/ssl_methods.py [--seeds N] [--methods simclr,byol,vicreg] [--outputs DIR] [--no-record]
       [OVERRIDE ...]
Each (method, seed) is one campaign `model=linear_probe selection=random selection.n_samples=20 round=3
reference.enabled=true`: the probe's validation accuracy at 20 / 40 / 60 random labels, and with every pool label
(full supervision: the embedding's ceiling). Equal compute: the same epochs, batch size, backbone and
augmentations for every method (the embedding config's defaults); each campaign's wall time is recorded beside
(two campaigns run at once, one torch thread each). Paired by seed (the same labels are drawn for every method),
against the first method named: mean difference and its 95 % percentile-bootstrap interval.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import REPO, record, run_measured

sys.path.insert(0, str(REPO))
from bpsrun.report.stats import bootstrap_ci, mean_sd  # noqa: E402

BUDGETS = {1: 20, 2: 40, 3: 60}  # round -> labels


def campaign(method: str, seed: int, outputs: Path, extra: list[str]) -> dict:
    name = f"ssl-{method}-s{seed}"
    command = [
        sys.executable, "-m", "bpsrun", f"embedding/method={method}", f"seed={seed}", f"campaign={name}",
        "model=linear_probe", "selection=random", "selection.n_samples=20", f"round={max(BUDGETS)}",
        "reference.enabled=true", f"reference.dir={outputs / 'reference' / name}", f"paths.outputs={outputs}",
        "trainer.threads=1", *extra,
    ]  # fmt: skip
    m = run_measured(command)
    acc = {
        n: json.loads((outputs / name / f"round_{r}" / "metrics.json").read_text())["val_accuracy"]
        for r, n in BUDGETS.items()
    }
    (full,) = (outputs / "reference" / name).glob("*/metrics.json")
    return {"method": method, "seed": seed, "acc": acc, "full": json.loads(full.read_text())["val_accuracy"],
            "wall_s": m.wall_s}  # fmt: skip


def cell(values: list[float]) -> str:
    mean, sd = mean_sd(values)
    return f"{mean:.3f} ± {sd:.3f}"


def paired(values: list[float], base: list[float]) -> str:
    diff = [a - b for a, b in zip(values, base, strict=True)]
    low, high = bootstrap_ci(diff)
    return f"{sum(diff) / len(diff):+.3f} [{low:+.3f}, {high:+.3f}]"


def table(results: list[dict], methods: list[str]) -> list[str]:
    by = {m: sorted((r for r in results if r["method"] == m), key=lambda r: r["seed"]) for m in methods}
    columns = [*(f"{n} labels" for n in BUDGETS.values()), "all labels"]
    first = methods[0]
    lines = [
        f"| method | {' | '.join(columns)} | 60 labels - {first} [95 % CI] | all - {first} [95 % CI] | wall per campaign |",
        "|---|" + "---|" * (len(columns) + 3),
    ]
    base = by[methods[0]]
    for m, rows in by.items():
        cells = [cell([r["acc"][n] for r in rows]) for n in BUDGETS.values()] + [cell([r["full"] for r in rows])]
        vs = ["-", "-"] if m == methods[0] else [
            paired([r["acc"][60] for r in rows], [r["acc"][60] for r in base]),
            paired([r["full"] for r in rows], [r["full"] for r in base]),
        ]  # fmt: skip
        wall = sum(r["wall_s"] for r in rows) / len(rows)
        lines.append(f"| {m} | {' | '.join(cells)} | {' | '.join(vs)} | {wall:.0f} s |")
    return lines


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--methods", default="simclr,byol,vicreg")
    parser.add_argument("--outputs", type=Path, default=REPO / "outputs" / "benchmarks" / "ssl_methods")
    parser.add_argument("--no-record", action="store_true")
    args, extra = parser.parse_known_args(argv)
    methods = args.methods.split(",")
    jobs = [(m, s) for s in range(args.seeds) for m in methods]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: campaign(*job, args.outputs, extra), jobs))
    (args.outputs / "results.json").write_text(json.dumps(results, indent=2))
    body = [
        f"`python benchmarks/ssl_methods.py --seeds {args.seeds}{' ' + ' '.join(extra) if extra else ''}`: each "
        f"method's embedding under the linear probe (`model=linear_probe selection=random`, rounds of 20 random "
        f"labels; all labels: `reference.enabled=true`), {args.seeds} paired seeds, mean ± sd; the difference to "
        f"{methods[0]} on the same seed with its 95 % percentile-bootstrap interval. Equal compute: the embedding config's "
        f"epochs, batch size, backbone and views for every method; wall is one campaign (embedding, 3 probe rounds, "
        f"full supervision), two at a time with one torch thread each.",
        "",
        *table(results, methods),
    ]
    if args.no_record:
        print("\n".join(body))
    else:
        record("Self-supervised methods: embedding/method", body)


if __name__ == "__main__":
    main(sys.argv[1:])
