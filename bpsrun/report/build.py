"""A sweep folder -> its report: read every job's campaign, summarise, write files, log to MLflow."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path

import numpy as np

from bpsrun.errors import BpsrunError
from bpsrun.files import atomic_file, atomic_write_text
from bpsrun.reference import reference_dir
from bpsrun.report.curves import Curve, StrategySummary, mean_sd, summarize
from bpsrun.report.jobs import Job, read_jobs

log = logging.getLogger("bpsrun")

FRACTION = 0.95  # "labels needed to reach 95 % of full supervision"


def read_curve(job: Job) -> Curve | None:
    """The job's finished rounds and its full-supervision accuracy; None if no round finished."""
    n, acc = [], []
    for r in range(1, int(job.cfg.round) + 1):
        path = job.root / f"round_{r}" / "metrics.json"
        if not path.exists():
            break
        metrics = json.loads(path.read_text())
        n.append(metrics["n_labeled"])
        acc.append(metrics["val_accuracy"])
    if not n:
        return None
    if len(n) < int(job.cfg.round):
        log.warning("%s: only %d of %d rounds finished; reported as far as it got", job.root, len(n), job.cfg.round)
    ref = job.path(str(reference_dir(job.cfg))) / "metrics.json"
    full = json.loads(ref.read_text())["val_accuracy"] if ref.exists() else None
    return Curve(job.cfg.selection.name, int(job.cfg.seed), str(job.cfg.campaign), np.array(n), np.array(acc), full)


def fmt(value: tuple[float, float], digits: int = 3) -> str:
    mean, sd = value
    return "-" if math.isnan(mean) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def full_supervision(curves: list[Curve]) -> tuple[float, float]:
    return mean_sd([c.full for c in {c.seed: c for c in curves if c.full is not None}.values()])


def table_text(rows: list[StrategySummary], full: tuple[float, float]) -> str:
    budgets = sorted({b for row in rows for b in row.budgets})
    head = ["strategy", "seeds", *[f"acc@{b}" for b in budgets], "AULC", "AULC - random", "labels to 95 %"]
    lines = [head]
    for row in rows:
        to_95 = f"{fmt(row.labels_to_95, 0)} ({row.reached_95}/{len(row.seeds)})"
        vs = fmt(row.vs_random) if row.vs_random else "-"
        accs = [fmt(row.accuracy[b]) if b in row.accuracy else "-" for b in budgets]
        lines.append([row.strategy, str(len(row.seeds)), *accs, fmt(row.aulc), vs, to_95])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in lines]
    text.append(f"full supervision (all pool labels): {fmt(full)}; 95 % of it: {FRACTION * full[0]:.3f}")
    return "\n".join(text)


def best_vs_random(rows: list[StrategySummary]) -> str:
    contenders = [row for row in rows if row.vs_random is not None]
    if not contenders:
        return "no random baseline in this sweep: AULC differences not computed"
    best = max(contenders, key=lambda row: row.aulc[0])
    mean, sd = best.vs_random
    return (
        f"best strategy by mean AULC: {best.strategy}, {mean:+.3f} ± {sd:.3f} AULC over random "
        f"(paired by seed, mean ± sd over {len(best.seeds)} seeds)"
    )


def summary_csv(rows: list[StrategySummary], full: tuple[float, float]) -> str:
    budgets = sorted({b for row in rows for b in row.budgets})
    out = io.StringIO()
    writer = csv.writer(out)
    acc_cols = [f"acc_{b}_{s}" for b in budgets for s in ("mean", "sd")]
    writer.writerow(
        ["strategy", "seeds", *acc_cols, "aulc_mean", "aulc_sd", "aulc_vs_random_mean", "aulc_vs_random_sd"]
        + ["labels_to_95_mean", "labels_to_95_sd", "reached_95", "full_supervision_mean", "full_supervision_sd"]
    )
    for row in rows:
        accs = [v for b in budgets for v in row.accuracy.get(b, (math.nan, math.nan))]
        vs = row.vs_random or (math.nan, math.nan)
        writer.writerow([row.strategy, len(row.seeds), *accs, *row.aulc, *vs, *row.labels_to_95, row.reached_95, *full])
    return out.getvalue()


def curves_csv(curves: list[Curve]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["strategy", "seed", "campaign", "round", "n_labeled", "val_accuracy", "full_supervision"])
    for c in curves:
        for r, (n, acc) in enumerate(zip(c.n_labeled, c.accuracy), start=1):
            writer.writerow([c.strategy, c.seed, c.campaign, r, int(n), float(acc), c.full if c.full else ""])
    return out.getvalue()


def build_report(sweep_dir: Path, log_to_mlflow: bool = True) -> str:
    """Write `<sweep>/report/` (PNG, two CSVs, report.md), log it to MLflow, print and return the table."""
    from bpsrun.report.figures import learning_curves_png  # matplotlib loads on first report, not on import

    jobs = read_jobs(sweep_dir)
    curves = [c for c in map(read_curve, jobs) if c is not None]
    if not curves:
        raise BpsrunError(f"{sweep_dir}: none of its {len(jobs)} campaigns has finished a round yet")
    rows = summarize(curves, FRACTION)
    full = full_supervision(curves)
    out = sweep_dir / "report"
    title = f"{sweep_dir.name}: {len(curves)} campaigns, {len(rows)} strategies"
    text = "\n".join([title, table_text(rows, full), best_vs_random(rows)])
    atomic_write_text(out / "summary.csv", summary_csv(rows, full))
    atomic_write_text(out / "curves.csv", curves_csv(curves))
    atomic_write_text(out / "report.md", f"```\n{text}\n```\n")
    with atomic_file(out / "learning_curves.png") as tmp, open(tmp, "wb") as f:
        learning_curves_png(f, rows, full, title)
    if log_to_mlflow:
        from bpsrun.report.mlflow_sweep import log_sweep  # --no-mlflow never imports mlflow

        log_sweep(sweep_dir, jobs[0], curves, rows, full, out)
    print(f"\n{text}\nreport: {out}", flush=True)
    return text
