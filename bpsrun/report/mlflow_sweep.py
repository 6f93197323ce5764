"""A sweep in MLflow: one sweep-level run with the report, and summary metrics on every campaign's parent run.

The sweep run holds each strategy's mean learning curve as a metric stepped by the number of labels, so the UI
charts them side by side; parent runs get the same per-campaign figures (AULC, labels to 95 %) for compare view.
Rebuilding a report replaces the sweep's run.
"""

from __future__ import annotations

import time
from pathlib import Path

from mlflow.entities import Metric, RunStatus

from bpsrun.report.curves import Curve, StrategySummary, campaign_metrics
from bpsrun.report.jobs import Job
from bpsrun.tracking.store import log_metrics, log_params, open_experiment


def sweep_metrics(rows: list[StrategySummary], full: tuple[float, float], now: int) -> list[Metric]:
    """Named `<measure>/<strategy>`: the UI's chart sections group by the first part, so every strategy's curve
    sits in one section (`learning_curve/`), every AULC in another, and so on. NaN (no reference) is left out."""
    out = [Metric("full_supervision/accuracy", full[0], now, 0)] if full[0] == full[0] else []
    for row in rows:
        s = row.strategy
        out += [Metric(f"learning_curve/{s}", row.accuracy[b][0], now, b) for b in row.budgets]  # step = labels
        out += [Metric(f"learning_curve_sd/{s}", row.accuracy[b][1], now, b) for b in row.budgets]
        out += [Metric(f"aulc/{s}", row.aulc[0], now, 0), Metric(f"aulc_sd/{s}", row.aulc[1], now, 0)]
        if row.reached_95:
            out.append(Metric(f"labels_to_95pct_full/{s}", row.labels_to_95[0], now, 0))
        if row.vs_random is not None:
            out.append(Metric(f"aulc_vs_random/{s}", row.vs_random[0], now, 0))
            out.append(Metric(f"aulc_vs_random_sd/{s}", row.vs_random[1], now, 0))
    return [m for m in out if m.value == m.value]


def log_sweep(
    sweep_dir: Path, first: Job, curves: list[Curve], rows: list[StrategySummary], full: tuple[float, float], out: Path
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
            "strategies": ",".join(row.strategy for row in rows),
            "seeds": ",".join(str(s) for s in sorted({c.seed for c in curves})),
            "campaigns": len(curves),
            "dataset": first.cfg.dataset.name,
        },
    )
    log_metrics(client, run_id, sweep_metrics(rows, full, now))
    for path in sorted(out.iterdir()):
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
