"""A campaign logged to a real `mlflow server` whose artifact store is S3 (moto on 127.0.0.1).

The server proxies the artifacts (`--artifacts-destination s3://...`): bpsrun runs with no AWS credentials at
all and every round's files still land in the bucket, through the server.
"""

import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import boto3
import pytest
import requests

from tests.conftest import ROUND_ARTIFACTS, run_command
from tests.s3server import CREDENTIALS, S3Server

pytestmark = pytest.mark.slow  # real servers and the command

BUCKET = "bpsrun-mlflow"
ROOT = "mlartifacts"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3_client(s3: S3Server):
    return boto3.client(
        "s3",
        endpoint_url=s3.url,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def s3():
    server = S3Server()
    try:
        s3_client(server).create_bucket(Bucket=BUCKET)
        yield server
    finally:
        server.stop()


def stop(proc: subprocess.Popen) -> None:
    """The server and its uvicorn worker: the process group that `start_new_session` gave them, by its id."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
            return


@contextmanager
def running_mlflow_server(root: Path, artifacts: str, env: dict[str, str]) -> Iterator[str]:
    """`mlflow server` on a free port (sqlite in `root`, artifacts proxied to `artifacts`), healthy; its URL.
    Stopped by its process group id at the end."""
    cmd = [
        str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port := free_port()),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{root}/mlflow.db", "--artifacts-destination", artifacts,
    ]  # fmt: skip
    log = root / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"mlflow server exited ({proc.returncode}):\n{log.read_text()[-5000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"mlflow server not healthy after 90 s:\n{log.read_text()[-5000:]}")
            with suppress(requests.RequestException):
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def tracking(s3, tmp_path_factory):
    """`mlflow server` on a free port (sqlite backend, artifacts proxied to the moto bucket); its base URL."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    env = {
        **os.environ,
        **CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
        "MLFLOW_S3_ENDPOINT_URL": s3.url,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    with running_mlflow_server(tmp, f"s3://{BUCKET}/{ROOT}", env) as url:
        yield url


def api(url: str, method: str, endpoint: str, **kwargs) -> dict:
    r = requests.request(method, f"{url}/api/2.0/mlflow/{endpoint}", timeout=30, **kwargs)
    assert r.status_code == 200, f"{method} {endpoint}: {r.status_code} {r.text[:2000]}"
    return r.json()


def paged(url: str, method: str, endpoint: str, items: str, page_arg: str, **request) -> list[dict]:
    """Every item of a paginated MLflow REST answer (`page_token` in the query or the body)."""
    out, token = [], None
    while True:
        if token:
            request[page_arg] = {**request[page_arg], "page_token": token}
        page = api(url, method, endpoint, **request)
        out += page.get(items, [])
        token = page.get("next_page_token")
        if not token:
            return out


def search_runs(url: str, experiment_id: str, view: str = "ACTIVE_ONLY") -> list[dict]:
    body = {"experiment_ids": [experiment_id], "max_results": 1000, "run_view_type": view}
    return paged(url, "POST", "runs/search", "runs", "json", json=body)


def pairs(items: list[dict] | None) -> dict[str, str]:
    return {i["key"]: i["value"] for i in items or []}


def history(url: str, run_id: str, key: str) -> list[dict]:
    params = {"run_id": run_id, "metric_key": key, "max_results": 25000}
    return paged(url, "GET", "metrics/get-history", "metrics", "params", params=params)


def listed_artifacts(url: str, run_id: str, path: str = "") -> dict[str, int]:
    """Every file of the run's artifacts, as the server lists them: relative path -> size."""
    params = {"run_id": run_id, **({"path": path} if path else {})}
    files: dict[str, int] = {}
    for f in api(url, "GET", "artifacts/list", params=params).get("files", []):
        if f.get("is_dir"):
            files.update(listed_artifacts(url, run_id, f["path"]))
        else:
            files[f["path"]] = int(f.get("file_size", 0))  # proto3 JSON leaves a zero size out (empty __init__.py)
    return files


def bucket_objects(s3: S3Server) -> dict[str, int]:
    client, objects = s3_client(s3), {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{ROOT}/"):
        objects.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return objects


def test_campaign_through_a_tracking_server_with_s3_artifacts(s3, tracking, tmp_path, shared_data, monkeypatch):
    # bpsrun gets no AWS credentials or S3 settings at all: the server proxies every artifact
    for key in list(os.environ):
        if key.startswith(("AWS_", "MLFLOW_")):
            monkeypatch.delenv(key)
    nowhere = str(tmp_path / "no-aws")
    no_aws = {"AWS_SHARED_CREDENTIALS_FILE": nowhere, "AWS_CONFIG_FILE": nowhere, "AWS_EC2_METADATA_DISABLED": "true"}
    out = tmp_path / "out"
    run_command(
        "round=2", f"tracking.uri={tracking}", "tracking.log_model=true", outputs=out, data=shared_data, env=no_aws
    )

    exp = api(tracking, "GET", "experiments/get-by-name", params={"experiment_name": "bpsrun-synthetic"})["experiment"]
    assert pairs(exp.get("tags")).get("mlflow.experimentKind") == "custom_model_development"
    assert exp["artifact_location"].startswith("mlflow-artifacts:")  # the server's proxy, not a local path

    runs = search_runs(tracking, exp["experiment_id"])
    kinds = Counter(pairs(r["data"].get("tags")).get("bpsrun.kind") for r in runs)
    assert kinds == {"campaign": 1, "round": 2}, kinds
    # a fresh, uninterrupted campaign replaces no run: nothing deleted either
    assert len(search_runs(tracking, exp["experiment_id"], view="ALL")) == 3
    for run in runs:
        assert run["info"]["status"] == "FINISHED", (pairs(run["data"].get("tags")), run["info"])
    (parent,) = [r for r in runs if pairs(r["data"].get("tags"))["bpsrun.kind"] == "campaign"]
    rounds = sorted(
        (r for r in runs if pairs(r["data"].get("tags"))["bpsrun.kind"] == "round"),
        key=lambda r: int(pairs(r["data"]["tags"])["bpsrun.round"]),
    )
    assert [pairs(r["data"]["tags"])["bpsrun.round"] for r in rounds] == ["1", "2"]
    parent_id = parent["info"]["run_id"]
    assert all(pairs(r["data"]["tags"])["mlflow.parentRunId"] == parent_id for r in rounds)

    params = pairs(parent["data"].get("params"))
    assert params["selection.name"] == "active"
    assert params["seed"] == "0"

    curve = history(tracking, parent_id, "val/accuracy")
    assert sorted(int(p["step"]) for p in curve) == [8, 16]  # one point per round, stepped by labels

    for run in runs:
        run_id = run["info"]["run_id"]
        keys = [m["key"] for m in run["data"].get("metrics", [])]
        assert keys, f"run {run['info']['run_name']} has no metrics"
        for key in keys:
            points = history(tracking, run_id, key)
            nan = [p for p in points if math.isnan(float(p["value"]))]
            assert not nan, f"{run['info']['run_name']}: {key} has NaN values {nan}"
            twice = [s for s, n in Counter(int(p["step"]) for p in points).items() if n > 1]
            assert not twice, f"{run['info']['run_name']}: {key} logged more than once at step(s) {twice}"

    objects = bucket_objects(s3)
    for run in rounds:
        run_id, experiment_id = run["info"]["run_id"], exp["experiment_id"]
        files = listed_artifacts(tracking, run_id)
        assert ROUND_ARTIFACTS <= set(files), sorted(files)
        for path, size in files.items():
            key = f"{ROOT}/{experiment_id}/{run_id}/artifacts/{path}"
            assert key in objects, f"{key} is listed by the server but not in s3://{BUCKET}: {sorted(objects)}"
            assert objects[key] == size, (key, objects[key], size)

    assert list(out.rglob(ROOT)) == []  # nothing stored beside the campaign
    assert not (out / "mlflow.db").exists()
