"""Talking to an MLflow store: the experiment, batched params and metrics, secrets kept out.

Everything goes through `MlflowClient` (no global active run), so Hydra multirun jobs in one process cannot
leak runs into each other.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import uuid
from collections.abc import Iterable
from contextlib import closing, nullcontext
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from bpsrun.errors import BpsrunError
from bpsrun.files import DiskFull, atomic_file
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


# MLflow 3's UI opens an experiment of this kind on its runs table (other kinds open on the GenAI overview)
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def open_experiment(uri: str, name: str, artifact_root: Path) -> tuple[MlflowClient, str]:
    """A client and the experiment's id, created on first use. Parallel sweep jobs race to create a new sqlite
    store ("table already exists") and experiment, so the first touch of a sqlite store holds a file lock.

    A local store keeps artifacts in `artifact_root`; a tracking server decides where they go (its
    `--default-artifact-root` or `--artifacts-destination`, e.g. S3), so none is forced on it.
    """
    local = not uri.startswith(("http://", "https://"))
    sqlite = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    with shared_lock(Path(f"{sqlite}.lock")) if sqlite else nullcontext():
        if sqlite is not None and not sqlite.exists():
            create_sqlite_store(sqlite)
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return client, exp.experiment_id
        location = None
        if local:
            artifact_root.mkdir(parents=True, exist_ok=True)
            location = artifact_root.resolve().as_uri()
        try:
            return client, client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
        except MlflowException as exc:  # a parallel job on a tracking server created it first (no lock there)
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return client, client.get_experiment_by_name(name).experiment_id


def create_sqlite_store(path: Path) -> None:
    """A new sqlite store, made beside its place and renamed into it once MLflow's tables exist: a run that fails
    on the way (a full disk, a kill) leaves no half-made store that every later run would fail on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # MLflow caches stores by URI
    try:
        template = empty_store()
        if template is not None:
            shutil.copyfile(template, tmp)
        open_store(tmp)  # MLflow migrates a missing store, and adds its Default experiment to one without
        os.replace(tmp, path)
    except OSError as exc:
        raise BpsrunError(f"{path}: could not create the MLflow store ({exc}); free space or fix tracking.uri") from exc
    finally:
        tmp.unlink(missing_ok=True)


def open_store(path: Path) -> None:
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)


def cache_dir() -> Path:
    """bpsrun's per-user cache: $BPSRUN_CACHE_DIR, else $XDG_CACHE_HOME/bpsrun, else ~/.cache/bpsrun."""
    if os.environ.get("BPSRUN_CACHE_DIR"):
        return Path(os.environ["BPSRUN_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bpsrun"


def empty_store() -> Path | None:
    """MLflow's tables with no experiment in them, made by MLflow's migrations once per MLflow version and user:
    a new store is a copy (the migrations cost ~4 s a store on 2 cores, a sweep's test makes dozens). MLflow adds
    the copy's Default experiment, with this process's artifact root and time, when it first opens it. None where
    the cache cannot be written: each store is then migrated on its own."""
    template = cache_dir() / "mlflow" / f"empty-store-{mlflow.__version__}.db"
    if template.exists():
        return template
    try:
        with atomic_file(template) as tmp:  # its temporaries name their writer: a killed one's are swept
            open_store(tmp)
            with closing(sqlite3.connect(tmp)) as db, db:
                db.execute("DELETE FROM experiments")  # only MLflow's Default, which it re-adds on first open
    except (OSError, sqlite3.Error, DiskFull):
        return None
    return template


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    flat = [Param(k, v) for k, v in flatten(params).items()]
    for start in range(0, len(flat), 100):
        client.log_batch(run_id, params=flat[start : start + 100])


def log_metrics(client: MlflowClient, run_id: str, metrics: list[Metric]) -> None:
    for start in range(0, len(metrics), 500):
        client.log_batch(run_id, metrics=metrics[start : start + 500])


def history_metrics(history: list[dict[str, float]], now: int) -> list[Metric]:
    """Per-epoch training curves at the optimiser step each epoch ended on, as Lightning's MLFlowLogger logs them."""
    return [
        Metric(key, value, now, int(row.get("step", row["epoch"])))  # rows recorded before steps were kept: epochs
        for row in history
        for key, value in row.items()
        if key not in ("epoch", "step")
    ]
