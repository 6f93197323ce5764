"""A campaign in MLflow: one parent run per campaign, one child run per round, full-supervision references.

References (and sweep reports, see `bpsrun.report.mlflow_sweep`) are top-level runs in the same experiment (tag
`bpsrun.kind` says which), so the UI lists them beside the campaigns they summarise. A round's child run is looked
up by tags before it is created: a rerun of a finished round logs nothing new, and a run left unfinished by a crash
is deleted and logged again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, RunStatus

from bpsrun.faults import checkpoint
from bpsrun.tracking.store import history_metrics, log_metrics, log_params, open_experiment

SUMMARY = ("n_labeled", "val_accuracy", "val_balanced_accuracy", "val_f1")


def summary_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """A round's (or reference's) headline metrics, from its metrics.json."""
    return {k: float(metrics[k]) for k in SUMMARY}


class Tracker:
    def __init__(self, uri: str, experiment: str, campaign: str, tags: dict[str, str], artifact_root: Path):
        self.client, self.experiment_id = open_experiment(uri, experiment, artifact_root)
        self.campaign = campaign
        self.parent_id = self._find_or_create_parent(tags)

    def _search(self, query: str) -> list:
        return self.client.search_runs([self.experiment_id], filter_string=query, max_results=100)

    def _find_or_create_parent(self, tags: dict[str, str]) -> str:
        runs = self._search(f"tags.`bpsrun.campaign` = '{self.campaign}' and tags.`bpsrun.kind` = 'campaign'")
        if runs:
            return runs[0].info.run_id
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.campaign,
            tags={**tags, "bpsrun.campaign": self.campaign, "bpsrun.kind": "campaign"},
        )
        return run.info.run_id

    def round_runs(self, round_: int) -> list:
        return self._search(
            f"tags.`bpsrun.campaign` = '{self.campaign}' and tags.`bpsrun.kind` = 'round' "
            f"and tags.`bpsrun.round` = '{round_}'"
        )

    def round_logged(self, round_: int) -> bool:
        return any(r.info.status == "FINISHED" for r in self.round_runs(round_))

    def log_round(
        self,
        round_: int,
        params: dict[str, Any],
        history: list[dict[str, float]],
        summary: dict[str, float],
        artifacts: list[Path],
    ) -> str:
        for stale in self.round_runs(round_):  # left unfinished by a crash
            self.client.delete_run(stale.info.run_id)
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{self.campaign} round {round_}",
            tags={
                "mlflow.parentRunId": self.parent_id,
                "bpsrun.campaign": self.campaign,
                "bpsrun.kind": "round",
                "bpsrun.round": str(round_),
            },
        )
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        log_params(self.client, run_id, params)
        summary_rows = [Metric(k, float(v), now, round_) for k, v in summary.items()]
        log_metrics(self.client, run_id, history_metrics(history, now) + summary_rows)
        for path in artifacts:
            self.client.log_artifact(run_id, str(path))
        checkpoint("mlflow")
        self._log_parent(round_, summary, now)
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
        return run_id

    def _log_parent(self, round_: int, summary: dict[str, float], now: int) -> None:
        for key in ("val_accuracy", "n_labeled"):
            steps = {m.step for m in self.client.get_metric_history(self.parent_id, key)}
            if round_ not in steps:
                self.client.log_metric(self.parent_id, key, float(summary[key]), timestamp=now, step=round_)

    def log_reference(
        self, name: str, params: dict[str, Any], history: list[dict[str, float]], summary: dict[str, float]
    ) -> None:
        """The full-supervision run `name`, once (callers hold the reference's lock)."""
        query = f"tags.`bpsrun.kind` = 'reference' and tags.`bpsrun.reference` = '{name}'"
        runs = self._search(query)
        if any(r.info.status == "FINISHED" for r in runs):
            return
        for stale in runs:
            self.client.delete_run(stale.info.run_id)
        tags = {"bpsrun.kind": "reference", "bpsrun.reference": name, "selection": "full supervision"}
        run_id = self.client.create_run(self.experiment_id, run_name=f"full supervision {name}", tags=tags).info.run_id
        now = int(time.time() * 1000)
        log_params(self.client, run_id, {k: v for k, v in params.items() if k not in ("selection", "campaign")})
        log_metrics(
            self.client, run_id, history_metrics(history, now) + [Metric(k, v, now, 0) for k, v in summary.items()]
        )
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))

    def close(self) -> None:
        self.client.set_terminated(self.parent_id, RunStatus.to_string(RunStatus.FINISHED))
