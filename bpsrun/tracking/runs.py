"""A campaign in MLflow: one parent run per campaign, one child run per round, full-supervision references.

Runs are live: the parent exists from the moment the campaign's checks pass, a round's child from the moment the
round starts, and Lightning's MLFlowLogger writes the training curves into the child as they happen. A round whose
child run is FINISHED is done; a child left unfinished (a crash, a stop awaiting labels) is replaced when the round
runs again, so the store never holds two runs of one round. References (and sweep reports, see
`bpsrun.report.mlflow_sweep`) are top-level runs in the same experiment (tag `bpsrun.kind` says which).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, RunStatus
from pytorch_lightning.loggers import MLFlowLogger

from bpsrun.faults import checkpoint
from bpsrun.tracking.store import history_metrics, log_metrics, log_params, open_experiment

SUMMARY = {  # metrics.json key -> MLflow name (the README's metric table)
    "val_accuracy": "val/accuracy",
    "val_balanced_accuracy": "val/balanced_accuracy",
    "val_f1": "val/f1",
}


def summary_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """A round's (or reference's) headline metrics from its metrics.json, by their MLflow names (none for a round
    trained before the validation labels were in)."""
    return {name: float(metrics[key]) for key, name in SUMMARY.items() if key in metrics}


class RoundLogger(MLFlowLogger):
    """Lightning's MLFlowLogger into an existing round run that outlives the fit: the round goes on to predict and
    log after training, and the campaign (not the Trainer) ends the run. Lightning adds an `epoch` value to each
    of its logging calls (twice per epoch, at one step); the step already orders the curve, so it is left out."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        super().log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step)

    def finalize(self, status: str = "success") -> None:
        pass


class Tracker:
    def __init__(self, uri: str, experiment: str, campaign: str, tags: dict[str, str], artifact_root: Path):
        self.uri = uri
        self.client, self.experiment_id = open_experiment(uri, experiment, artifact_root)
        self.campaign = campaign
        self.tags = tags
        self.parent_id = ""
        self.round_ids: dict[int, str] = {}

    def _search(self, query: str) -> list:
        return self.client.search_runs([self.experiment_id], filter_string=query, max_results=100)

    def _status(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)

    def open(self, params: dict[str, Any]) -> None:
        """The campaign's parent run, created with the resolved config as params, or reopened (RUNNING again)."""
        runs = self._search(f"tags.`bpsrun.campaign` = '{self.campaign}' and tags.`bpsrun.kind` = 'campaign'")
        if runs:
            self.parent_id = runs[0].info.run_id
            self.client.update_run(self.parent_id, status="RUNNING")
            return
        tags = {**self.tags, "bpsrun.campaign": self.campaign, "bpsrun.kind": "campaign"}
        self.parent_id = self.client.create_run(self.experiment_id, run_name=self.campaign, tags=tags).info.run_id
        log_params(self.client, self.parent_id, params)

    def round_runs(self, round_: int) -> list:
        return self._search(
            f"tags.`bpsrun.campaign` = '{self.campaign}' and tags.`bpsrun.kind` = 'round' "
            f"and tags.`bpsrun.round` = '{round_}'"
        )

    def round_logged(self, round_: int) -> bool:
        return any(r.info.status == "FINISHED" for r in self.round_runs(round_))

    def start_round(self, round_: int, params: dict[str, Any]) -> str:
        """A fresh child run for the round (replacing one a crash or a stop left unfinished)."""
        for stale in self.round_runs(round_):
            self.client.delete_run(stale.info.run_id)
        tags = {
            "mlflow.parentRunId": self.parent_id,
            "bpsrun.campaign": self.campaign,
            "bpsrun.kind": "round",
            "bpsrun.round": str(round_),
        }
        run_name = f"{self.campaign} round {round_}"
        run_id = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags).info.run_id
        log_params(self.client, run_id, params)
        self.round_ids[round_] = run_id
        return run_id

    def round_logger(self, round_: int) -> RoundLogger:
        return RoundLogger(tracking_uri=self.uri, run_id=self.round_ids[round_])

    def log_metrics(self, round_: int, metrics: dict[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        log_metrics(self.client, self.round_ids[round_], [Metric(k, v, now, step) for k, v in metrics.items()])

    def log_params(self, round_: int, params: dict[str, Any]) -> None:
        log_params(self.client, self.round_ids[round_], params)

    def log_history(self, round_: int, history: list[dict[str, float]]) -> None:
        """Training curves of a round trained in an earlier run (the live ones went with the replaced run)."""
        log_metrics(self.client, self.round_ids[round_], history_metrics(history, int(time.time() * 1000)))

    def finish_round(self, round_: int, n_labeled: int, summary: dict[str, float], artifacts: list[Path]) -> None:
        run_id = self.round_ids[round_]
        for path in artifacts:
            self.client.log_artifact(run_id, str(path))
        checkpoint("mlflow")
        now = int(time.time() * 1000)
        have = {m.step for m in self.client.get_metric_history(self.parent_id, "val/accuracy")}
        if summary and n_labeled not in have:  # the campaign's learning curve: one point per round, by labels
            log_metrics(self.client, self.parent_id, [Metric(k, v, now, n_labeled) for k, v in summary.items()])
        self._status(run_id, RunStatus.to_string(RunStatus.FINISHED))

    def log_parent_point(self, key: str, value: float, step: int) -> None:
        """One point of a campaign curve on the parent run, once per step (a rerun logs nothing twice)."""
        if step not in {m.step for m in self.client.get_metric_history(self.parent_id, key)}:
            log_metrics(self.client, self.parent_id, [Metric(key, value, int(time.time() * 1000), step)])

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
        self._status(run_id, RunStatus.to_string(RunStatus.FINISHED))

    def runs_link(self, ui: str = "http://127.0.0.1:5000") -> str:
        """The experiment's runs table in the MLflow UI (without `workflowType` MLflow 3 opens its GenAI view)."""
        base = self.uri.rstrip("/") if self.uri.startswith(("http://", "https://")) else ui
        return f"{base}/#/experiments/{self.experiment_id}/runs?workflowType=machine_learning"

    def note_stop(self, round_: int, reason: str) -> None:
        """The stopping rule's verdict on the parent run: the MLflow UI shows where and why a campaign halted."""
        self.client.set_tag(self.parent_id, "bpsrun.stopped_after_round", str(round_))
        self.client.set_tag(self.parent_id, "bpsrun.stop_reason", reason)

    def note_validation(self, round_: int, note: str) -> None:
        """Why a round run has no validation metrics (yet), on the run itself: the UI says it plainly."""
        self.client.set_tag(self.round_ids[round_], "bpsrun.validation", note)

    def log_late_scores(self, round_: int, n_labeled: int, summary: dict[str, float], artifacts: list[Path]) -> None:
        """Validation metrics of a round scored after it finished (its validation labels came later): into the
        round's run and the campaign's learning curve."""
        run_id = next(r.info.run_id for r in self.round_runs(round_) if r.info.status == "FINISHED")
        now = int(time.time() * 1000)
        log_metrics(self.client, run_id, [Metric(k, v, now, 0) for k, v in summary.items()])
        for path in artifacts:
            self.client.log_artifact(run_id, str(path))
        self.client.set_tag(run_id, "bpsrun.validation", "scored after the round, once its labels were in")
        log_metrics(self.client, self.parent_id, [Metric(k, v, now, n_labeled) for k, v in summary.items()])

    def end(self, status: str) -> None:
        """End the campaign's open runs: FINISHED, SCHEDULED (awaiting labels), FAILED or KILLED."""
        for run_id in self.round_ids.values():
            if self.client.get_run(run_id).info.status == "RUNNING":
                self._status(run_id, status)
        if self.parent_id:
            self._status(self.parent_id, status)
