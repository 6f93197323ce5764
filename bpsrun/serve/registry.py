"""Each round's model into MLflow: a pyfunc model in the round's run (artifact `model`), registered under the
campaign's name as a new version, with the alias `current` moved onto it.

MLflow keeps the alias `latest` for itself: `models:/NAME@latest` (like `models:/NAME/latest`) is always the newest
version, here the newest round's, and cannot be set; the alias bpsrun moves is `current`. The environment is stated,
not inferred (MLflow would load the model in a subprocess to find its imports): bpsrun's own dependencies at their
installed versions, and bpsrun's code itself in the model (`code/bpsrun`), so `mlflow models predict` can build an
environment without bpsrun installed.
"""

from __future__ import annotations

import logging
import pickle
import shutil
import tempfile
import time
from functools import cache
from importlib.metadata import requires, version
from pathlib import Path

import mlflow.pyfunc
from hydra.utils import get_object
from mlflow.exceptions import MlflowException
from packaging.requirements import Requirement

from bpsrun.context import Context
from bpsrun.plugins import accepted
from bpsrun.serve.pyfunc import BACKBONE, CONFIG, MODEL, quiet_artifact_copies, save_backbone
from bpsrun.tracking.runs import Tracker

log = logging.getLogger("bpsrun")

ARTIFACT = "model"
ALIAS = "current"
CODE = Path(__file__).with_name("model_code.py")  # the model as code, not a pickle (MLflow's models from code)


@cache
def pip_requirements() -> list[str]:
    """bpsrun's dependencies (no extras) pinned to what is installed, plus what the pyfunc format itself loads."""
    names = [Requirement(spec) for spec in requires("bpsrun") or []]
    wanted = [r.name for r in names if r.marker is None or r.marker.evaluate({"extra": ""})]
    return [f"{name}=={version(name)}" for name in [*wanted, "pandas", "cloudpickle"]]


def takes_encoder(ctx: Context) -> bool:
    """Whether the learner builds on the embedding's network (Context.learner hands it one)."""
    return bool(accepted(get_object(ctx.cfg.model._target_), {"encoder": ctx.encoder}))


def save_round_model(ctx: Context, r: int, config: Path, folder: Path) -> Path | None:
    """Round r's pyfunc model under `folder`/model; None (and one log line) if its learner cannot be packed."""
    artifacts = {MODEL: str(ctx.layout.model(r)), CONFIG: str(config)}
    if takes_encoder(ctx):
        artifacts[BACKBONE] = str(folder / "backbone.pt")
        try:
            save_backbone(ctx.encoder, folder / "backbone.pt")
        except (pickle.PicklingError, AttributeError, TypeError) as exc:  # a network holding e.g. a lambda
            log.warning("round %d: model not logged to MLflow: the embedding's network cannot be saved (%s)", r, exc)
            return None
    code = shutil.copytree(
        Path(__file__).parents[1], folder / "code" / "bpsrun", ignore=shutil.ignore_patterns("__pycache__")
    )
    model = folder / "model"
    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.ERROR)  # its "cannot infer a signature" warning, every round: the input is images
    try:
        mlflow.pyfunc.save_model(
            model,
            python_model=CODE,
            artifacts=artifacts,
            code_paths=[str(code)],
            pip_requirements=pip_requirements(),
            metadata={"task": ctx.task, "classes": ctx.classes, "campaign": ctx.cfg.campaign, "round": r},
        )
    finally:
        pyfunc_log.setLevel(level)
    return model


def log_round_model(ctx: Context, tracker: Tracker, r: int, config: Path) -> None:
    """Round r's model into its run, registered as a new version of the campaign's model, alias `current`.
    `config` is the round's saved config, secrets dropped (round_log.log_round writes it for the run)."""
    started = time.monotonic()
    quiet_artifact_copies()
    run_id, name, client = tracker.round_ids[r], ctx.cfg.campaign, tracker.client
    with tempfile.TemporaryDirectory() as tmp:
        model = save_round_model(ctx, r, config, Path(tmp))
        if model is None:
            return
        client.log_artifacts(run_id, str(model), ARTIFACT)
    try:
        client.create_registered_model(name, tags={"bpsrun.campaign": name})
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    metrics = ctx.read_metrics(r)
    scored = f", validation accuracy {metrics['val_accuracy']:.3f}" if "val_accuracy" in metrics else ""
    tags = {"bpsrun.campaign": name, "bpsrun.round": str(r)}
    description = f"round {r}: {metrics['n_labeled']} labels{scored}"
    mv = client.create_model_version(name, f"runs:/{run_id}/{ARTIFACT}", run_id, tags=tags, description=description)
    client.set_registered_model_alias(name, ALIAS, mv.version)
    seconds = time.monotonic() - started
    tracker.log_metrics(r, {"model/log_seconds": seconds})
    log.info("round %d: model registered as models:/%s@%s (version %s, %.1f s)", r, name, ALIAS, mv.version, seconds)
