"""Label Studio's JSON-MIN records: the one shape every labeler (oracle, Label Studio) hands to training."""

from __future__ import annotations

import json
import math
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


def lead_time_seconds(value: Any) -> float | None:
    """A record's lead_time: seconds spent on the annotation, None when unknown (never 0 for unknown); ValueError
    for a negative, NaN or non-numeric value."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value < 0:
        raise ValueError(value)
    return float(value)


def check_lead_time(path: Path, i: int, rec: dict[str, Any]) -> None:
    try:
        lead_time_seconds(rec.get("lead_time"))
    except ValueError:
        value = rec["lead_time"]
        raise BpsrunError(
            f"{path}: record {i} ({file_of(rec)!r}) has lead_time {value!r}; expected seconds >= 0 or null "
            f"(unknown); fix or remove the field and rerun"
        ) from None


def read_records(path: Path, classes: list[str]) -> list[dict[str, Any]]:
    """Every annotation record of a JSON-MIN file, checked: unknown labels or bad lead_time name the record."""
    try:
        records = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BpsrunError(f"{path}: not a JSON-MIN export ({exc}); export again as JSON-MIN") from None
    if not isinstance(records, list):
        raise BpsrunError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    for i, rec in enumerate(records):
        label = rec.get(CHOICE_KEY) if isinstance(rec, dict) else None
        if not isinstance(label, str) or label not in classes:
            raise BpsrunError(f"{path}: record {i} has label {label!r}; expected one of {classes}")
        check_lead_time(path, i, rec)
    return records


def read_labels(path: Path, classes: list[str]) -> dict[str, str]:
    """file name -> label from a JSON-MIN file (the last record of an image wins)."""
    return {file_of(rec): rec[CHOICE_KEY] for rec in read_records(path, classes)}
