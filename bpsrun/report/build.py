"""A sweep folder -> its report: read every job's campaign, summarise, write files, log to MLflow."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from bpsrun.errors import BpsrunError
from bpsrun.files import atomic_file, atomic_write_text
from bpsrun.label.timing import seconds_cap
from bpsrun.reference import reference_dir
from bpsrun.report.arms import arm_names, baselines, named, shared_values
from bpsrun.report.cost import cumulative_annotations, cumulative_minutes, round_records
from bpsrun.report.curves import ArmSummary, Curve, Paired, fewer_images, summarize, targets
from bpsrun.report.jobs import Job, read_jobs
from bpsrun.report.stats import RESAMPLES, mean_sd

log = logging.getLogger("bpsrun")

FRACTION = 0.95  # "labels needed to reach 95 % of full supervision"
MIN_SEEDS = 10  # random is a strong baseline: a verdict on fewer paired seeds is only indicative


def read_curve(job: Job, arm: str) -> Curve | None:
    """The job's finished rounds, their labeling cost and its full-supervision accuracy; None if no round
    finished."""
    rounds = []
    for r in range(1, int(job.cfg.round) + 1):
        path = job.root / f"round_{r}" / "metrics.json"
        if not path.exists():
            break
        rounds.append(json.loads(path.read_text()))
    if not rounds:
        return None
    if len(rounds) < int(job.cfg.round):
        log.warning(
            "%s: only %d of %d rounds finished; reported as far as it got", job.root, len(rounds), job.cfg.round
        )
    ref = job.path(str(reference_dir(job.cfg))) / "metrics.json"
    full = json.loads(ref.read_text())["val_accuracy"] if ref.exists() else None
    records = round_records(job.root, len(rounds))
    images = np.array([m["n_labeled"] for m in rounds])
    annotations = cumulative_annotations(rounds, records)
    return Curve(
        arm,
        int(job.cfg.seed),
        str(job.cfg.campaign),
        images if annotations is None else annotations,  # budgets count annotations: each one is a person's work
        np.array([m["val_accuracy"] for m in rounds]),
        full,
        job.cfg.selection.name,
        cumulative_minutes(records, seconds_cap(job.cfg)),
        images,
    )


def fmt(value: tuple[float, float], digits: int = 3) -> str:
    mean, sd = value
    return "-" if math.isnan(mean) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def fmt_ci(mean: float, ci: tuple[float, float]) -> str:
    interval = "" if math.isnan(ci[0]) else f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"
    return f"{mean:+.3f}{interval}"


def shared_baseline(rows: list[ArmSummary]) -> str:
    """The one arm every paired arm is compared with, named in the table's header; "vs" when they differ (a
    column then names each arm's)."""
    names = {row.vs.baseline for row in rows if row.vs is not None}
    return names.pop() if len(names) == 1 else "vs"


def paired_cells(vs: Paired | None, with_baseline: bool) -> list[str]:
    """The baseline (when arms differ in theirs), AULC difference, seeds won; labels to 95 % / the baseline's; labels
    to the baseline's final accuracy and their share of its budget."""
    if vs is None:
        return ["-"] * (6 if with_baseline else 5)
    ratio = "-" if math.isnan(vs.labels_ratio) else f"{vs.labels_ratio:.2f} ({vs.ratio_seeds})"
    to_final = f"{fmt(vs.to_final, 0)} ({vs.to_final_seeds}/{vs.seeds})"
    share = "-" if math.isnan(vs.to_final_ratio) else f"{vs.to_final_ratio:.2f}"
    cells = [fmt_ci(vs.aulc[0], vs.ci), f"{round(vs.beats * vs.seeds)}/{vs.seeds}", ratio, to_final, share]
    return [vs.baseline, *cells] if with_baseline else cells


def timed(rows: list[ArmSummary]) -> bool:
    """Some arm's labeling minutes are known; with none, the report is what it was before it knew of them."""
    return any(row.minutes is not None for row in rows)


def annotated(rows: list[ArmSummary]) -> bool:
    """Some arm has fewer labeled images than annotations (overlap, re-labels)."""
    return any(row.fewer_images for row in rows)


def cost_head(rows: list[ArmSummary]) -> list[str]:
    return ["minutes to 95 %"] * timed(rows) + ["images labeled"] * annotated(rows)


def cost_cells(row: ArmSummary, rows: list[ArmSummary]) -> list[str]:
    """Minutes to 95 % and final labeled images, where some arm has them; "-" for an arm that does not."""
    cells = []
    if timed(rows):
        m = row.minutes
        cells.append("-" if m is None else f"{fmt(m.to_target, 1)} ({m.reached}/{len(row.seeds)})")
    if annotated(rows):
        cells.append("-" if math.isnan(row.images) else f"{row.images:.1f}")
    return cells


def table_text(rows: list[ArmSummary], vs: str) -> str:
    budgets = sorted({b for row in rows for b in row.budgets})
    with_baseline = vs == "vs"
    head = ["arm", "seeds", *[f"acc@{b}" for b in budgets], "full sup.", "AULC", *(["vs"] if with_baseline else [])]
    head += [f"AULC - {vs} [95 % CI]", f"beats {vs}", "labels to 95 %", f"labels / {vs}"]
    head += [f"labels to {vs}'s final", f"/ {vs}'s budget", *cost_head(rows)]
    lines = [head]
    for row in rows:
        accs = [fmt(row.accuracy[b]) if b in row.accuracy else "-" for b in budgets]
        to_95 = f"{fmt(row.labels_to_target, 0)} ({row.reached}/{len(row.seeds)})"
        *paired, ratio, to_final, share = paired_cells(row.vs, with_baseline)
        lines.append(
            [row.arm, str(len(row.seeds)), *accs, fmt(row.full), fmt(row.aulc), *paired, to_95, ratio, to_final, share]
            + cost_cells(row, rows)
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def legend_text(target: float, vs: str) -> str:
    which = "its baseline (vs)" if vs == "vs" else vs
    bar = "no full-supervision reference in this sweep" if math.isnan(target) else f"mean {target:.3f}"
    return "\n".join(
        [
            f"labels to 95 %: first budget reaching 95 % of the best full-supervision accuracy on that seed "
            f"({bar}), mean ± sd over the seeds that reached it (how many did); full sup.: the arm's learner on "
            "all pool labels",
            f"AULC - {vs}: the arm minus {which} on the same seed (same validation set); [95 % CI]: percentile "
            f"bootstrap of the mean over seeds ({RESAMPLES:,} resamples); beats: seeds with a higher AULC; "
            f"labels / {vs}: geometric mean of the per-seed ratio where both reached 95 %",
            f"labels to {vs}'s final: labels the arm needs to reach {which}'s accuracy at its largest budget on the "
            f"same seed, interpolated between rounds, mean ± sd over the seeds where it does (how many); / {vs}'s "
            "budget: their share of that budget (geometric mean; 0.50 = half the labels)",
        ]
    )


def cost_legend(rows: list[ArmSummary]) -> list[str]:
    lines = []
    if timed(rows):
        lines.append(
            "minutes to 95 %: labeling minutes so far (each annotation's lead_time, capped at "
            "labeling.max_seconds_per_label) when the curve first reaches the bar of labels to 95 %, linear between "
            "rounds, mean ± sd over the seeds that reached it (how many); - : some labeling time of the arm unknown"
        )
    if annotated(rows):
        lines.append(
            "images labeled: images with a label at the final round, mean over seeds; the budgets count "
            "annotations, so an arm has fewer images where they had several annotators or were labeled again"
        )
    return lines


def verdict(rows: list[ArmSummary]) -> str:
    contenders = [row for row in rows if row.vs is not None]
    if not contenders:
        return "no baseline arm in this sweep (selection=random, or --baseline ARM): no paired differences"
    best = max(contenders, key=lambda row: row.aulc[0])
    vs = best.vs
    low, high = vs.ci
    if math.isnan(low):
        meaning = "one paired seed: no interval"
    elif low > 0:
        meaning = "the interval excludes 0"
    elif high < 0:
        meaning = f"the interval is below 0: {vs.baseline} is better"
    else:
        meaning = f"the interval includes 0: no evidence it beats {vs.baseline}"
    few = f"; fewer than {MIN_SEEDS} paired seeds, indicative only" if vs.seeds < MIN_SEEDS else ""
    return (
        f"best arm by mean AULC: {best.arm}, {fmt_ci(vs.aulc[0], vs.ci)} AULC over {vs.baseline}, higher on "
        f"{round(vs.beats * vs.seeds)} of {vs.seeds} paired seeds ({meaning}{few})"
    )


def summary_csv(rows: list[ArmSummary]) -> str:
    budgets = sorted({b for row in rows for b in row.budgets})
    out = io.StringIO()
    writer = csv.writer(out)
    acc_cols = [f"acc_{b}_{s}" for b in budgets for s in ("mean", "sd", "ci_low", "ci_high")]
    vs_cols = ["baseline", "paired_seeds", "aulc_vs_baseline_mean", "aulc_vs_baseline_sd"]
    vs_cols += ["aulc_vs_baseline_ci_low", "aulc_vs_baseline_ci_high", "beats_baseline_share"]
    vs_cols += ["labels_ratio_vs_baseline", "labels_ratio_seeds"]
    vs_cols += ["labels_to_baseline_final_mean", "labels_to_baseline_final_sd", "labels_to_baseline_final_seeds"]
    vs_cols += ["labels_to_baseline_final_share"]
    writer.writerow(
        ["arm", "strategy", "seeds", *acc_cols, "aulc_mean", "aulc_sd", *vs_cols]
        + ["labels_to_95_mean", "labels_to_95_sd", "reached_95", "full_supervision_mean", "full_supervision_sd"]
        + ["minutes_to_95_mean", "minutes_to_95_sd", "reached_95_minutes"] * timed(rows)
        + ["images_labeled_mean"] * annotated(rows)
    )
    nan2 = (math.nan, math.nan)
    for row in rows:
        accs = [v for b in budgets for v in (*row.accuracy.get(b, nan2), *row.band.get(b, nan2))]
        vs = row.vs
        paired = (
            [vs.baseline, vs.seeds, *vs.aulc, *vs.ci, vs.beats, vs.labels_ratio, vs.ratio_seeds]
            + [*vs.to_final, vs.to_final_seeds, vs.to_final_ratio]
            if vs
            else ["", 0, *[math.nan] * 6, 0, math.nan, math.nan, 0, math.nan]
        )
        minutes = [*row.minutes.to_target, row.minutes.reached] if row.minutes is not None else [math.nan, math.nan, 0]
        writer.writerow(
            [row.arm, row.strategy, len(row.seeds), *accs, *row.aulc, *paired]
            + [*row.labels_to_target, row.reached, *row.full]
            + minutes * timed(rows)
            + [row.images] * annotated(rows)
        )
    return out.getvalue()


def curves_csv(curves: list[Curve]) -> str:
    """Every round (n_labeled: annotations so far); labeling minutes and labeled images only when some campaign
    has them ("" where not)."""
    timed = any(c.minutes is not None for c in curves)
    annotated = any(map(fewer_images, curves))
    out = io.StringIO()
    writer = csv.writer(out)
    head = ["arm", "strategy", "seed", "campaign", "round", "n_labeled", "val_accuracy", "full_supervision"]
    writer.writerow(head + ["labeling_minutes"] * timed + ["n_images"] * annotated)
    for c in curves:
        for r, (n, acc) in enumerate(zip(c.n_labeled, c.accuracy), start=1):
            minutes = [float(c.minutes[r - 1]) if c.minutes is not None else ""] * timed
            images = [int(c.images[r - 1]) if c.images is not None else ""] * annotated
            writer.writerow(
                [c.arm, c.strategy, c.seed, c.campaign, r, int(n), float(acc), c.full or ""] + minutes + images
            )
    return out.getvalue()


def read_curves(jobs: list[Job]) -> tuple[list[Curve], dict[str, dict[str, str]], dict[str, set[str]]]:
    """Every finished campaign's curve, named by its arm; every arm's naming choices, and all it chose."""
    choices = [job.choices for job in jobs]
    names, arms = arm_names(choices)
    return [c for c in map(read_curve, jobs, names) if c is not None], arms, shared_values(choices, names)


def build_report(sweep_dir: Path, log_to_mlflow: bool = True, baseline: str | None = None) -> str:
    """Write `<sweep>/report/` (PNGs, two CSVs, report.md), log it to MLflow, print and return the table.
    `baseline` names the arm every other is paired with; None: the sweep's `report.baseline`, else each arm's
    selection=random counterpart."""
    from bpsrun.report.figures import learning_curves_png, minutes_png  # matplotlib loads on first report

    jobs = read_jobs(sweep_dir)
    curves, arms, shared = read_curves(jobs)
    if not curves:
        raise BpsrunError(f"{sweep_dir}: none of its {len(jobs)} campaigns has finished a round yet")
    chosen = baseline or OmegaConf.select(jobs[0].cfg, "report.baseline", default=None)
    rows = summarize(curves, baselines(arms, named(chosen, shared) if chosen else None), FRACTION)
    target = mean_sd(list(targets(curves, FRACTION).values()))[0]
    out = sweep_dir / "report"
    title = f"{sweep_dir.name}: {len(curves)} campaigns, {len(rows)} arms"
    vs = shared_baseline(rows)
    text = "\n".join([title, table_text(rows, vs), legend_text(target, vs), *cost_legend(rows), verdict(rows)])
    atomic_write_text(out / "summary.csv", summary_csv(rows))
    atomic_write_text(out / "curves.csv", curves_csv(curves))
    atomic_write_text(out / "report.md", f"```\n{text}\n```\n")
    with atomic_file(out / "learning_curves.png") as tmp, open(tmp, "wb") as f:
        learning_curves_png(f, rows, target, title)
    minutes = out / "learning_curves_minutes.png"
    if timed(rows):
        with atomic_file(minutes) as tmp, open(tmp, "wb") as f:
            minutes_png(f, rows, target, title)
    else:  # an earlier build's figure would be logged as this one's
        minutes.unlink(missing_ok=True)
    if log_to_mlflow:
        from bpsrun.report.mlflow_sweep import log_sweep  # --no-mlflow never imports mlflow

        log_sweep(sweep_dir, jobs[0], curves, rows, chosen, out)
    print(f"\n{text}\nreport: {out}", flush=True)
    return text
