"""A sweep in MLflow: one sweep-level run with the report, and summary metrics on every campaign's parent run.

The sweep run holds each arm's mean learning curve as a metric stepped by the number of labels, so the UI charts
them side by side, and its figures against its baseline; parent runs get the same per-campaign figures (AULC,
labels and labeling minutes to 95 %) for compare view.
Rebuilding a report replaces the sweep's run.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from mlflow.entities import Metric, RunStatus

from bpsrun.report.curves import ArmSummary, Curve, campaign_metrics
from bpsrun.report.jobs import Job
from bpsrun.tracking.store import log_metrics, log_params, open_experiment


def metric_arm(arm: str) -> str:
    """An arm name as MLflow takes it in a metric name: `small_cnn/tutorial` stays, `round=3` becomes `round_3`."""
    return re.sub(r"[^\w.\- /]", "_", arm)


def arm_metrics(row: ArmSummary, now: int) -> list[Metric]:
    a = metric_arm(row.arm)
    out = [Metric(f"learning_curve/{a}", row.accuracy[b][0], now, b) for b in row.budgets]  # step = labels
    out += [Metric(f"learning_curve_sd/{a}", row.accuracy[b][1], now, b) for b in row.budgets]
    single = {"aulc": row.aulc[0], "aulc_sd": row.aulc[1], "full_supervision": row.full[0]}
    if row.reached:
        single["labels_to_95pct_full"] = row.labels_to_target[0]
    if row.minutes is not None and row.minutes.reached:
        single["minutes_to_95pct_full"] = row.minutes.to_target[0]
    if row.vs is not None:
        vs = row.vs
        single |= {"aulc_vs_baseline": vs.aulc[0], "aulc_vs_baseline_sd": vs.aulc[1]}
        single |= {"aulc_vs_baseline_ci_low": vs.ci[0], "aulc_vs_baseline_ci_high": vs.ci[1]}
        single |= {"beats_baseline_share": vs.beats, "labels_ratio_vs_baseline": vs.labels_ratio}
    return out + [Metric(f"{measure}/{a}", value, now, 0) for measure, value in single.items()]


def sweep_metrics(rows: list[ArmSummary], now: int) -> list[Metric]:
    """Named `<measure>/<arm>`: the UI's chart sections group by the first part, so every arm's curve sits in one
    section (`learning_curve/`), every AULC in another, and so on. NaN (no reference, one seed) is left out."""
    return [m for row in rows for m in arm_metrics(row, now) if m.value == m.value]


def log_sweep(
    sweep_dir: Path, first: Job, curves: list[Curve], rows: list[ArmSummary], baseline: str | None, out: Path
) -> None:
    """`first` (any job of the sweep) names the tracking store and experiment."""
    artifacts = first.path(first.cfg.paths.outputs) / "mlartifacts"
    client, exp = open_experiment(first.tracking_uri, f"bpsrun-{first.cfg.dataset.name}", artifacts)
    sweep = str(sweep_dir.resolve())
    now = int(time.time() * 1000)
    for curve in curves:  # parent runs: per-campaign summary, tagged with the sweep
        parents = client.search_runs(
            [exp], f"tags.`bpsrun.campaign` = '{curve.campaign}' and tags.`bpsrun.kind` = 'campaign'", max_results=1
        )
        if parents:
            run_id = parents[0].info.run_id
            metrics = campaign_metrics(curve)
            log_metrics(client, run_id, [Metric(k, v, now, 0) for k, v in metrics.items() if v == v])  # NaN: never
            client.set_tag(run_id, "bpsrun.sweep", sweep)
    for stale in client.search_runs([exp], f"tags.`bpsrun.kind` = 'sweep' and tags.`bpsrun.sweep` = '{sweep}'"):
        client.delete_run(stale.info.run_id)
    run_id = client.create_run(
        exp, run_name=f"sweep {sweep_dir.name}", tags={"bpsrun.kind": "sweep", "bpsrun.sweep": sweep}
    ).info.run_id
    log_params(
        client,
        run_id,
        {
            "sweep_dir": sweep,
            "arms": ",".join(row.arm for row in rows),
            "baseline": baseline or "selection=random per arm",
            "seeds": ",".join(str(s) for s in sorted({c.seed for c in curves})),
            "campaigns": len(curves),
            "dataset": first.cfg.dataset.name,
        },
    )
    log_metrics(client, run_id, sweep_metrics(rows, now))
    for path in sorted(out.iterdir()):
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
