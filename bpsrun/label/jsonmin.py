"""Label Studio's JSON-MIN records: the one shape every labeler (oracle, Label Studio) hands to training."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from bpsrun.errors import BpsrunError

CHOICE_KEY = "choice"  # the <Choices name="choice"> of our labeling config


def record(task_id: int, file_name: str, image_url: str, label: str, annotator: str) -> dict[str, Any]:
    return {
        "image": image_url,
        "file_name": file_name,
        "id": task_id,
        CHOICE_KEY: label,
        "annotator": annotator,
        "annotation_id": task_id,
    }


def file_of(rec: dict[str, Any]) -> str:
    """The image's file name: the `file_name` field if present, else the last part of the (url-quoted) image URL."""
    if rec.get("file_name"):
        return str(rec["file_name"])
    url = str(rec.get("image", ""))
    query = parse_qs(urlparse(url).query).get("d")
    path = query[0] if query else unquote(urlparse(url).path)
    return PurePosixPath(path).name


def read_labels(path: Path, classes: list[str]) -> dict[str, str]:
    """file name -> label from a JSON-MIN file; unknown or multiple labels are errors naming the record."""
    try:
        records = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BpsrunError(f"{path}: not a JSON-MIN export ({exc}); export again as JSON-MIN") from None
    if not isinstance(records, list):
        raise BpsrunError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    labels: dict[str, str] = {}
    for i, rec in enumerate(records):
        label = rec.get(CHOICE_KEY) if isinstance(rec, dict) else None
        if not isinstance(label, str) or label not in classes:
            raise BpsrunError(f"{path}: record {i} has label {label!r}; expected one of {classes}")
        labels[file_of(rec)] = label
    return labels
