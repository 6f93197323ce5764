"""SIGKILL at eight points of a real campaign, each followed by a rerun: the result equals an uninterrupted run.

`BPSRUN_KILL_AT=<point>[:<n>]` makes the process kill itself with SIGKILL the n-th time it reaches a point
(bpsrun/faults.py). The kills are chained: each rerun continues from what the previous one left and is killed
at the next point, so every resume path runs; the last rerun finishes the campaign.
"""

import json
import signal
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_bpsrun, run_command
from tests.s3server import CREDENTIALS, S3Server

pytestmark = pytest.mark.slow  # SIGKILLed command processes, a real S3 server

KILLS = [
    "prepare",  # manifest written, Lightly metadata not yet
    "publish:3",  # mid-upload of the pool's images
    "embedding",  # inside SimCLR training
    "selection",  # selection.json written, selected.txt not yet
    "labeling",  # labels in hand, labels.json not yet written
    "training:2",  # inside the classifier's training
    "predictions:10",  # mid-way through the Lightly prediction files
    "mlflow",  # the round's MLflow run created and filled, not yet finished
]


def invariants(root: Path) -> None:
    """What a killed run may leave: complete files only, never a half-written one under a final name."""
    for path in root.rglob("*.json"):
        json.loads(path.read_text())  # every JSON file parses
    for rd in root.glob("round_*"):
        predictions = rd / "lightly" / ".lightly" / "predictions"
        if predictions.exists():
            task = predictions / "bps-classification"
            pool = sum(1 for r in (root / "manifest.csv").read_text().splitlines()[1:] if ",train," in r)
            assert len(list(task.glob("*.json"))) == pool + 1  # schema.json + one per pool image
        if (rd / "selected.txt").exists():
            assert (rd / "selection.json").exists()


def no_temporaries(root: Path) -> None:
    """Temporary files of killed writers are cleaned up by the run that resumes."""
    assert [p for p in root.rglob(".*.tmp")] == []


def test_sigkill_at_eight_points_then_rerun_matches_an_uninterrupted_run(tmp_path, shared_data):
    server = S3Server()
    try:
        server.client().create_bucket(Bucket="crash", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        publish = ["export.s3.bucket=crash", f"export.s3.endpoint_url={server.url}"]
        args = ("round=2", "campaign=crash")
        clean = tmp_path / "clean"
        run_command(*args, *publish, "export.s3.prefix=clean/", outputs=clean, data=shared_data, env=CREDENTIALS)

        out = tmp_path / "crashed"
        root = out / "crash"
        data = tmp_path / "data"  # its own: SimCLR embeddings in the shared folder would skip the embedding kill
        for point in KILLS:
            env = {**CREDENTIALS, "BPSRUN_KILL_AT": point}
            proc = run_bpsrun(
                *args, *publish, "export.s3.prefix=crashed/", outputs=out, data=data, env=env, check=False
            )
            assert proc.returncode == -signal.SIGKILL, f"{point}: {proc.returncode}\n{proc.stderr[-2000:]}"
            invariants(root)
        run_command(*args, *publish, "export.s3.prefix=crashed/", outputs=out, data=data, env=CREDENTIALS)
        no_temporaries(root)

        for r in (1, 2):
            for name in ("selected.txt", "labels.json", "metrics.json"):
                got = (root / f"round_{r}" / name).read_bytes()
                assert got == (clean / "crash" / f"round_{r}" / name).read_bytes(), f"round {r} {name}"
        mlflow = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
        runs = mlflow.search_runs(mlflow.get_experiment_by_name("bpsrun-synthetic").experiment_id)
        kinds = sorted((r.data.tags["bpsrun.kind"], r.data.tags.get("bpsrun.round", "")) for r in runs)
        assert kinds == [("campaign", ""), ("round", "1"), ("round", "2")]  # no duplicate after the mlflow kill
        assert all(r.info.status == "FINISHED" for r in runs)

        s3 = server.client()
        published = {o["Key"]: o for o in s3.list_objects_v2(Bucket="crash", Prefix="crashed/")["Contents"]}
        pool = [r.split(",")[0] for r in (root / "manifest.csv").read_text().splitlines()[1:] if ",train," in r]
        assert {k for k in published if k.startswith("crashed/data/")} == {f"crashed/data/{f}" for f in pool}
        for key in published:
            if key.startswith("crashed/lightly/.lightly/predictions/"):
                local = root / "round_2" / "lightly" / key.removeprefix("crashed/lightly/")
                assert s3.get_object(Bucket="crash", Key=key)["Body"].read() == local.read_bytes()
    finally:
        server.stop()
