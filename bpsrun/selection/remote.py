"""The `lightly_worker` backend: the same validated selection config, scheduled on a real Lightly Worker.

For users with a Lightly account whose datasource (see the S3 publish) holds the pool. The token comes from
the LIGHTLY_TOKEN environment variable only. lightly's HTTP client puts the token in request URLs, so its
connection warnings are silenced and its exception texts are never repeated.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bpsrun.errors import BpsrunError
from bpsrun.selection.config import EXTENSIONS
from bpsrun.selection.engine import SelectionInputs

WORKER_CONFIG = {"datasource": {"process_all": True}, "enable_training": False}


@contextmanager
def quiet_http() -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in ("urllib3", "urllib3.connectionpool", "lightly")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class LightlyWorker:
    """selection/backend=lightly_worker: the Worker picks from the Lightly dataset holding the pool."""

    def __init__(self, dataset_id: str | None):
        worker_client()  # a missing client is refused when the backend is built, before anything is written
        self.dataset_id = dataset_id

    def select(self, config: dict[str, Any], inputs: SelectionInputs) -> list[str]:
        pool = set(inputs.candidates)
        return [f for f in select_with_worker(config, self.dataset_id) if f in pool]


def worker_client() -> type:
    """lightly's API client, which lightly 1.6 (August 2026) removed: the `lightly-worker` extra pins a release
    that ships it."""
    try:
        from lightly.api import ApiWorkflowClient
    except ImportError:
        raise BpsrunError(
            "selection/backend=lightly_worker needs lightly's API client (lightly.api, gone from lightly 1.6); "
            "install the extra: pip install -e '.[lightly-worker]', or use selection/backend=local"
        ) from None
    return ApiWorkflowClient


def select_with_worker(config: dict[str, Any], dataset_id: str | None) -> list[str]:
    """File names the Worker picked (read back from the run's tag). `config` must already be validated."""
    for entry in config["strategies"]:
        if entry["strategy"]["type"] in EXTENSIONS:
            raise BpsrunError(
                f"strategy type {entry['strategy']['type']} is a bpsrun extension the Lightly Worker does not run; "
                f"use selection/backend=local"
            )
    token = os.environ.get("LIGHTLY_TOKEN")
    if not token:
        raise BpsrunError(
            "selection.backend=lightly_worker needs your Lightly token in the LIGHTLY_TOKEN environment variable "
            "(never in a config file); or use selection.backend=local"
        )
    if not dataset_id:
        raise BpsrunError(
            "selection.backend=lightly_worker needs selection.worker.dataset_id=<your Lightly dataset id>"
        )
    server = os.environ.get("LIGHTLY_SERVER_LOCATION", "https://api.lightly.ai")
    try:
        with quiet_http():
            client = worker_client()(token=token, dataset_id=dataset_id)
            scheduled = client.schedule_compute_worker_run(worker_config=WORKER_CONFIG, selection_config=config)
            for info in client.compute_worker_run_info_generator(scheduled_run_id=scheduled):
                if info.in_end_state():
                    break
            if not info.ended_successfully():
                raise BpsrunError(
                    f"the Lightly Worker run {scheduled} ended in state {info.state}; see the Lightly app"
                )
            run = client.get_compute_worker_run_from_scheduled_run(scheduled_run_id=scheduled)
            tags = client.get_compute_worker_run_tags(run_id=run.id)
            return client.export_filenames_by_tag_id(tag_id=tags[0].id).splitlines()
    except BpsrunError:
        raise
    except Exception as exc:  # any transport or API failure; its text may carry the token
        raise BpsrunError(
            f"selection.backend=lightly_worker: the Lightly API at {server} failed ({type(exc).__name__}); "
            f"check the network, LIGHTLY_SERVER_LOCATION and the token in LIGHTLY_TOKEN"
        ) from None
