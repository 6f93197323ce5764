"""S3 download throughput: our downloader vs `aws s3 sync`, on the same files from the same local S3 server.

A moto S3 server runs in its own process on 127.0.0.1 with a public BPS-like bucket (synthetic TIFFs, the
real file names and sizes of ~10-40 KB). Each client downloads every file into an empty folder, as separate
processes, alternating, best of `--repeats`; then each runs again on the complete folder (the resume case).

    python -m venv /tmp/awscli && /tmp/awscli/bin/pip install awscli      # its botocore pins clash with ours
    python benchmarks/s3_download.py --aws /tmp/awscli/bin/aws --files 2000

Prints a Markdown table and records it in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from common import record

from bpsrun.data.synthetic import SyntheticSpec, generate

BUCKET, PREFIX = "nasa-bps-training-data", "Microscopy/train/"

OURS = """
import sys
from pathlib import Path
from bpsrun.data.s3 import S3Location, client, download, list_sizes
loc = S3Location("{bucket}", "{prefix}", "us-west-2", sys.argv[1])
s3 = client(loc, workers=int(sys.argv[3]))
sizes = {{k: v for k, v in list_sizes(s3, loc).items() if k.endswith(".tif")}}
download(s3, loc, sorted(sizes), Path(sys.argv[2]), sizes, workers=int(sys.argv[3]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("moto server did not start")


def fill_bucket(url: str, files: int, work: Path) -> int:
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="y")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    policy = (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", '
        '"Action": ["s3:GetObject", "s3:ListBucket"], '
        f'"Resource": ["arn:aws:s3:::{BUCKET}", "arn:aws:s3:::{BUCKET}/*"]}}]}}'
    )
    s3.put_bucket_policy(Bucket=BUCKET, Policy=policy)
    root = generate(SyntheticSpec(num_images=files, seed=11), work / "src")
    total = 0
    for path in sorted((root / "images").iterdir()):
        body = path.read_bytes()
        total += len(body)
        s3.put_object(Bucket=BUCKET, Key=PREFIX + path.name, Body=body)
    return total


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aws", default=shutil.which("aws"), help="the aws CLI (awscli from PyPI)")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.aws:
        sys.exit("no `aws` found: install awscli in its own venv and pass --aws PATH (see the docstring)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port)
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-west-2", "AWS_EC2_METADATA_DISABLED": "true"}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            total = fill_bucket(url, args.files, work)
            source = f"s3://{BUCKET}/{PREFIX}"
            commands = {
                "bpsrun": lambda d: [
                    sys.executable,
                    "-c",
                    OURS.format(bucket=BUCKET, prefix=PREFIX),
                    url,
                    d,
                    str(args.workers),
                ],
                "aws s3 sync": lambda d: [
                    args.aws,
                    "s3",
                    "sync",
                    source,
                    d,
                    "--no-sign-request",
                    "--endpoint-url",
                    url,
                    "--only-show-errors",
                ],
            }
            folder = {name: lambda k, n=name: str(work / f"{n.split()[0]}-{k}") for name in commands}
            best = {name: float("inf") for name in commands}
            for k in range(args.repeats):
                for name, command in commands.items():
                    best[name] = min(best[name], timed(command(folder[name](k)), env))
            resume = {name: timed(command(folder[name](0)), env) for name, command in commands.items()}
            counts = {name: len(list(Path(folder[name](0)).rglob("*.tif"))) for name in commands}
    finally:
        server.terminate()
        server.wait()
    mb = total / 2**20
    lines = [
        f"Server: moto on 127.0.0.1. {args.files} BPS-like TIFFs, {mb:.1f} MiB; full download into an empty folder, best of {args.repeats}; "
        f"then a rerun on the complete folder. bpsrun with {args.workers} workers; aws s3 sync with its defaults "
        f"(10 concurrent requests).",
        "",
        "| client | files | full download (s) | files/s | MiB/s | rerun, nothing to fetch (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, seconds in best.items():
        lines.append(
            f"| {name} | {counts[name]} | {seconds:.2f} | {args.files / seconds:.0f} | {mb / seconds:.1f} | "
            f"{resume[name]:.2f} |"
        )
    ratio = best["aws s3 sync"] / best["bpsrun"]
    lines += ["", f"bpsrun / aws s3 sync throughput ratio: **{ratio:.2f}x**"]
    record("S3 download", lines)


if __name__ == "__main__":
    main()
