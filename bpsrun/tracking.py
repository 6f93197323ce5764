"""MLflow: one experiment per dataset, one parent run per campaign, one child run per round.

Full-supervision references and sweep reports are top-level runs in the same experiment (tag `bpsrun.kind`
says which), so the UI lists them beside the campaigns they summarise.

Everything goes through `MlflowClient` (no global active run), so Hydra multirun jobs in one process cannot
leak runs into each other. A round's child run is looked up by tags before it is created: a rerun of a
finished round logs nothing new, and a run left unfinished by a crash is deleted and logged again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient

from bpsrun.faults import checkpoint
from bpsrun.lock import shared_lock

SECRET = re.compile(r"(token|secret|password|passwd|access_key|api_key|credential)", re.IGNORECASE)
PARAM_MAX = 6000


def flatten(cfg: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys for nested dicts and lists; keys that look like secrets are dropped."""
    if isinstance(cfg, dict):
        items: Iterable[tuple[str, Any]] = cfg.items()
    elif isinstance(cfg, list):
        items = ((str(i), v) for i, v in enumerate(cfg))
    else:
        return {prefix: str(cfg)[:PARAM_MAX]}
    out: dict[str, str] = {}
    for k, v in items:
        if SECRET.search(str(k)):
            continue
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def open_experiment(uri: str, name: str, artifact_root: Path) -> tuple[MlflowClient, str]:
    """A client and the experiment's id, created on first use. Parallel sweep jobs race to create a new sqlite
    store ("table already exists") and experiment, so the first touch of a sqlite store holds a file lock."""
    lock = (
        shared_lock(Path(f"{uri.removeprefix('sqlite:///')}.lock")) if uri.startswith("sqlite:///") else nullcontext()
    )
    with lock:
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return client, exp.experiment_id
        artifact_root.mkdir(parents=True, exist_ok=True)
        return client, client.create_experiment(name, artifact_location=artifact_root.resolve().as_uri())


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    flat = [Param(k, v) for k, v in flatten(params).items()]
    for start in range(0, len(flat), 100):
        client.log_batch(run_id, params=flat[start : start + 100])


def log_metrics(client: MlflowClient, run_id: str, metrics: list[Metric]) -> None:
    for start in range(0, len(metrics), 500):
        client.log_batch(run_id, metrics=metrics[start : start + 500])


def history_metrics(history: list[dict[str, float]], now: int) -> list[Metric]:
    """Per-epoch training curves, one step per epoch."""
    return [
        Metric(key.replace("/", "_"), value, now, int(row["epoch"]))
        for row in history
        for key, value in row.items()
        if key != "epoch"
    ]


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
