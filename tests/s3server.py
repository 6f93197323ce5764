"""A real S3-protocol server (moto's ThreadedMotoServer) on 127.0.0.1, holding a BPS-like public bucket."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from bpsrun.data.synthetic import SyntheticSpec, generate

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise

BUCKET = "nasa-bps-training-data"
PREFIX = "Microscopy/train/"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret-key"}


class S3Server:
    def __init__(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        self.port = self.server.get_host_and_port()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-west-2",
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        """Back on the same port; moto's state lives in this process, so the buckets are still there."""
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def public_bucket(self, name: str) -> None:
        s3 = self.client()
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        statement = {
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
        }
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))

    def upload_bps(self, name: str, root: Path, meta: bytes | None = None) -> None:
        """root/images/* and root/meta.csv (or `meta`) under PREFIX, as in the real bucket."""
        s3 = self.client()
        for path in sorted((root / "images").iterdir()):
            s3.put_object(Bucket=name, Key=PREFIX + path.name, Body=path.read_bytes())
        s3.put_object(Bucket=name, Key=PREFIX + "meta.csv", Body=meta or (root / "meta.csv").read_bytes())


class ProcessS3Server(S3Server):
    """moto's server in a process of its own: its own buckets (moto's threaded servers in one process share theirs),
    stopped by its pid."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto server on port {self.port} did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def bps_like(data: Path, num_images: int = 400) -> Path:
    return generate(SyntheticSpec(num_images=num_images, seed=7), data / f"bps-like-{num_images}")
