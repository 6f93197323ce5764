"""Publish a campaign as a Lightly S3 datasource: `data/` (the pool's images), `lightly/.lightly/{metadata,predictions}/`.

Idempotent: objects whose MD5 (the ETag of a single-part upload) already matches are not sent again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from omegaconf import DictConfig

from bpsrun.data.images import png_bytes
from bpsrun.data.s3 import S3Location, client, s3_errors
from bpsrun.errors import BpsrunError
from bpsrun.faults import checkpoint
from bpsrun.progress import progress

log = logging.getLogger("bpsrun")

Body = Callable[[], bytes]


def remote_etags(s3, loc: S3Location, under: str) -> dict[str, str]:
    prefix = loc.key(under)
    etags = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            etags[obj["Key"]] = obj["ETag"].strip('"')
    return etags


def publish(s3, loc: S3Location, objects: dict[str, Body], under: str, workers: int = 16) -> int:
    """Upload the objects (relative key -> bytes) that are new or changed under `prefix/under`. Returns the count."""
    existing = remote_etags(s3, loc, under)

    def send(name: str) -> bool:
        body = objects[name]()
        key = loc.key(name)
        if existing.get(key) == hashlib.md5(body, usedforsecurity=False).hexdigest():
            return False
        s3.put_object(Bucket=loc.bucket, Key=key, Body=body)
        checkpoint("publish")
        return True

    with ThreadPoolExecutor(max_workers=workers) as pool:
        sent = sum(progress(pool.map(send, sorted(objects)), total=len(objects), desc=f"publish {under}", unit="file"))
    log.info("published %d new or changed of %d files to %s", sent, len(objects), loc.url(loc.key(under)))
    return sent


def png_name(name: str) -> str:
    return str(PurePosixPath(name).with_suffix(".png"))


def image_objects(files: dict[str, Path], images: str) -> dict[str, Body]:
    """`data/<file>`: the original bytes, or an 8-bit PNG render (Lightly's web app cannot show 16-bit TIFF)."""
    if images == "tiff":
        return {f"data/{name}": path.read_bytes for name, path in files.items()}
    return {f"data/{png_name(name)}": (lambda p=path: png_bytes(p)) for name, path in files.items()}


def json_for_renders(path: Path) -> bytes:
    """A Lightly JSON file whose `file_name` points at the PNG render instead of the TIFF."""
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "file_name" in data:
        data["file_name"] = png_name(data["file_name"])
    return json.dumps(data).encode()


def lightly_objects(root: Path, images: str) -> dict[str, Body]:
    """Every JSON file under `root/.lightly/`, keyed `lightly/.lightly/...`: byte for byte, or following the renders."""
    read = Path.read_bytes if images == "tiff" else json_for_renders
    dot = root / ".lightly"
    return {f"lightly/.lightly/{p.relative_to(dot).as_posix()}": (lambda p=p: read(p)) for p in dot.rglob("*.json")}


def publish_campaign(
    spec: DictConfig, pool_images: dict[str, Path], lightly_root: Path, parts: tuple[str, ...]
) -> None:
    """export.s3: `data/` (the pool's images) and/or Lightly folders under `lightly_root`, as a Lightly datasource."""
    if spec.images not in ("tiff", "png"):
        raise BpsrunError(f"export.s3.images={spec.images!r}: use tiff (the originals) or png (8-bit renders)")
    loc = S3Location(spec.bucket, spec.prefix or "", spec.region, spec.endpoint_url, anonymous=False)
    s3 = client(loc, int(spec.workers))
    for part in parts:
        objects = (
            image_objects(pool_images, spec.images) if part == "data/" else lightly_objects(lightly_root, spec.images)
        )
        with s3_errors(loc, "export.s3"):
            publish(s3, loc, objects, part, int(spec.workers))
