"""S3 transfers: an anonymous or signed client, safe local paths for keys, and a resumable concurrent download."""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from bpsrun.errors import BpsrunError
from bpsrun.files import pid_alive
from bpsrun.progress import progress

log = logging.getLogger("bpsrun")

# errors worth another attempt: a dropped or refused connection, a timeout, a truncated body, throttling
RETRYABLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError", "503", "500"}


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    anonymous: bool = True

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    @property
    def store(self) -> str:
        """The S3 service as a folder name (`aws`, `127.0.0.1_9000`): two stores with one bucket name must not
        share a cache."""
        if not self.endpoint_url:
            return "aws"
        netloc = urlparse(self.endpoint_url).netloc or self.endpoint_url
        return re.sub(r"[^A-Za-z0-9.-]", "_", netloc)

    def key(self, name: str) -> str:
        return f"{self.prefix.rstrip('/')}/{name}" if self.prefix.strip("/") else name


def client(loc: S3Location, workers: int = 16, retries: int = 5):
    """A boto3 client: unsigned for public buckets, else credentials from the environment (never from config)."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    config = Config(
        signature_version=UNSIGNED if loc.anonymous else None,
        retries={"max_attempts": retries + 1, "mode": "standard"},
        max_pool_connections=max(workers, 10),
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client(
        "s3", region_name=loc.region, endpoint_url=loc.endpoint_url or None, config=config
    )


@contextmanager
def s3_errors(loc: S3Location, knob: str) -> Iterator[None]:
    """botocore's failures as one readable line naming the bucket and the knob to change."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except NoCredentialsError:
        raise BpsrunError(
            f"{loc.url()}: no AWS credentials; export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        ) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        raise BpsrunError(
            f"{loc.url()}: {code} ({exc.operation_name}); check {knob}.bucket, prefix and access"
        ) from None
    except BotoCoreError as exc:
        where = loc.endpoint_url or "AWS S3"
        raise BpsrunError(
            f"{loc.url()}: cannot reach {where} ({exc}); check {knob}.endpoint_url and the network"
        ) from None


def safe_path(root: Path, name: str, source: str) -> Path:
    """The local path for a key's relative name; names that would land outside `root` are refused."""
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or "\\" in name or name.startswith("~"):
        raise BpsrunError(f"{source}: file name {name!r} would escape the cache folder {root}; refusing to fetch it")
    path = (root / pure).resolve()
    if not path.is_relative_to(root.resolve()):
        raise BpsrunError(f"{source}: file name {name!r} resolves outside the cache folder {root}; refusing it")
    return path


def is_retryable(exc: Exception) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return error.get("Code") in RETRYABLE_CODES or str(error.get("Code", "")).startswith("5")
    return isinstance(exc, BotoCoreError | OSError)


def fetch_object(s3, loc: S3Location, name: str, dest: Path, retries: int, backoff_s: float) -> int:
    """Download one object to `dest` through a temporary name; a partial file never carries the final name."""
    from botocore.exceptions import ClientError

    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            response = s3.get_object(Bucket=loc.bucket, Key=loc.key(name))
            expected = int(response["ContentLength"])
            with open(tmp, "wb") as f:
                for chunk in response["Body"].iter_chunks(1 << 16):
                    f.write(chunk)
            if tmp.stat().st_size != expected:
                raise OSError(f"truncated body: {tmp.stat().st_size} of {expected} bytes")
            os.replace(tmp, dest)
            return expected
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, ClientError) and not is_retryable(exc):
                code = exc.response.get("Error", {}).get("Code")
                raise BpsrunError(f"{loc.url(loc.key(name))}: {code}; check dataset.bucket/prefix and access") from None
            if attempt == retries or not is_retryable(exc):
                raise
            time.sleep(backoff_s * 2**attempt * (1 + random.random()))
    raise AssertionError("unreachable")


def list_sizes(s3, loc: S3Location) -> dict[str, int]:
    """Relative name -> size of every object under the prefix (one request per 1,000 objects)."""
    prefix = loc.key("")
    sizes = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            sizes[obj["Key"][len(prefix) :]] = int(obj["Size"])
    return sizes


def part_owner(part: Path) -> int:
    """The pid in a `.<name>.<pid>.<thread>.part` file name, or 0 when it has none."""
    fields = part.name.rsplit(".", 3)
    return int(fields[1]) if len(fields) == 4 and fields[1].isdigit() else 0


def remove_stale_parts(root: Path) -> None:
    """Temporary files left by a killed download (their process is gone); a live process keeps its own."""
    for part in root.glob("**/.*.part"):
        pid = part_owner(part)
        if pid <= 0 or not pid_alive(pid):
            part.unlink(missing_ok=True)


def download(
    s3,
    loc: S3Location,
    names: Iterable[str],
    root: Path,
    sizes: dict[str, int],
    workers: int = 16,
    retries: int = 5,
    backoff_s: float = 0.5,
) -> int:
    """Fetch the names whose local copy is missing or has the wrong size. Returns how many were fetched.

    Concurrent, resumable (a rerun fetches only what is missing), with a progress bar. Files that fail after
    all retries are reported together; the ones that arrived stay, so the rerun continues from there.
    """
    todo = []
    for name in names:
        path = safe_path(root, name, loc.url(loc.key(name)))
        if not path.is_file() or path.stat().st_size != sizes[name]:
            todo.append((name, path))
    if not todo:
        return 0
    remove_stale_parts(root)
    log.info("downloading %d files from %s to %s", len(todo), loc.url(loc.key("")), root)
    failed: list[tuple[str, Exception]] = []
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        progress(total=len(todo), unit="file", desc="download") as bar,
    ):
        futures = {pool.submit(fetch_object, s3, loc, n, p, retries, backoff_s): n for n, p in todo}
        for future in as_completed(futures):
            try:
                future.result()
            except BpsrunError:
                raise
            except Exception as exc:
                failed.append((futures[future], exc))
            bar.update()
    if failed:
        name, exc = failed[0]
        raise BpsrunError(
            f"{len(failed)} of {len(todo)} files could not be downloaded from {loc.url(loc.key(''))} "
            f"(first: {name}: {exc}); the other files are kept: rerun the same command to fetch only what is missing"
        )
    return len(todo)
