"""Label Studio exports (JSON-MIN or full JSON) -> every annotation of the picked files (one vote per annotator and
image), with errors that name the record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from bpsrun.errors import BpsrunError
from bpsrun.label.jsonmin import CHOICE_KEY, lead_time_seconds


@dataclass(frozen=True)
class Annotation:
    file: str
    label: str
    task_id: int | None
    annotation_id: int
    updated_at: str
    annotator: str  # Label Studio user id or email; "unknown" when the record names none
    lead_time: float | None  # seconds the task was open (idle time included); None: unknown, never 0
    where: str  # "<export file>: record <i>", for messages


def image_name(url: str) -> str:
    """The file part of a Label Studio image URL: `/data/local-files/?d=a%2Fb.png` -> `b.png`."""
    query = parse_qs(urlparse(url).query).get("d")
    path = query[0] if query else unquote(urlparse(url).path)
    return PurePosixPath(path.replace("\\/", "/")).name


def match_pick(name: str, picks: set[str]) -> str | None:
    """A pick by exact name, by its `<name>.png` render, or by a render with the same stem (`x.png` for `x.tif`)."""
    if name in picks:
        return name
    if name.endswith(".png") and name[: -len(".png")] in picks:
        return name[: -len(".png")]
    same_stem = [p for p in picks if PurePosixPath(p).stem == PurePosixPath(name).stem]
    return same_stem[0] if len(same_stem) == 1 else None


def flatten(data: Any, source: str) -> list[tuple[dict[str, Any], str]]:
    """(JSON-MIN-like record, where) pairs from either export format. Full JSON tasks give one per annotation."""
    if not isinstance(data, list):
        raise BpsrunError(f"{source}: expected a JSON list (export as JSON-MIN or JSON), got {type(data).__name__}")
    out = []
    for i, item in enumerate(data):
        where = f"{source}: record {i}"
        if not isinstance(item, dict):
            raise BpsrunError(f"{where}: expected an object, got {type(item).__name__}")
        if "annotations" not in item:  # JSON-MIN: already one record per annotation
            out.append((item, where))
            continue
        try:
            out += task_records(item, where)
        except (KeyError, TypeError, AttributeError, IndexError) as exc:  # a hand-edited or foreign export
            raise BpsrunError(
                f"{where}: not a Label Studio task ({type(exc).__name__}: {exc}); export again as JSON-MIN or JSON"
            ) from None
    return out


def task_records(item: dict[str, Any], where: str) -> list[tuple[dict[str, Any], str]]:
    """A full-JSON task's annotations as JSON-MIN-like records (cancelled ones left out)."""
    task = item.get("data") or {}
    out = []
    for annotation in item["annotations"] or []:
        if annotation.get("was_cancelled"):
            continue  # skipped in the labeling UI
        choices = [r["value"]["choices"] for r in annotation.get("result") or [] if r.get("from_name") == CHOICE_KEY]
        rec = {**task, "id": item.get("id"), "annotation_id": annotation.get("id", 0)}
        rec["updated_at"] = annotation.get("updated_at") or annotation.get("created_at") or ""
        rec["annotator"] = annotator_of(annotation.get("completed_by"))
        if "lead_time" in annotation:
            rec["lead_time"] = annotation["lead_time"]
        if choices and choices[0]:  # an empty choice list is no label
            rec[CHOICE_KEY] = choices[0][0] if len(choices[0]) == 1 else {"choices": choices[0]}
        out.append((rec, f"{where} (annotation {annotation.get('id')})"))
    return out


def annotator_of(completed_by: Any) -> Any:
    """Full JSON's `completed_by`: a user id, or an expanded user object (its email, else its id)."""
    if isinstance(completed_by, dict):
        return completed_by.get("email") or completed_by.get("id")
    return completed_by


def lead_time_of(rec: dict[str, Any], where: str) -> float | None:
    """Seconds, or None when the record has none (older exports, annotations created over the API)."""
    try:
        return lead_time_seconds(rec.get("lead_time"))
    except ValueError:
        raise BpsrunError(
            f"{where}: lead_time {rec['lead_time']!r} is not a number of seconds >= 0; fix or remove it (null: time "
            f"unknown) and rerun"
        ) from None


def parse(
    records: list[tuple[dict[str, Any], str]], picks: list[str], classes: list[str], campaign: str
) -> list[Annotation]:
    """Validated annotations of this round's picks. Records without a label (unlabeled tasks) are left out."""
    pick_set = set(picks)
    out = []
    for rec, where in records:
        if rec.get("campaign") not in (None, campaign):
            raise BpsrunError(
                f"{where} belongs to campaign {rec['campaign']!r}, not {campaign!r}; export from this campaign's project"
            )
        if CHOICE_KEY not in rec:
            continue
        label = rec[CHOICE_KEY]
        if isinstance(label, dict):
            raise BpsrunError(f"{where}: several choices {label.get('choices')}; give each image exactly one label")
        if label not in classes:
            raise BpsrunError(f"{where}: label {label!r} is not in the labeling config; use one of {classes}")
        name = str(rec.get("file_name") or image_name(str(rec.get("image", ""))))
        file = match_pick(name, pick_set)
        if file is None:
            raise BpsrunError(
                f"{where}: {name!r} was not picked in this round; export only this round's tasks (or its project)"
            )
        stamp = str(rec.get("updated_at") or rec.get("created_at") or "")
        task_id = rec.get("id")
        who = rec.get("annotator")
        annotator = "unknown" if who in (None, "") else str(who)
        aid = int(rec.get("annotation_id") or 0)
        out.append(Annotation(file, label, task_id, aid, stamp, annotator, lead_time_of(rec, where), where))
    return out


def one_vote_each(annotations: list[Annotation]) -> list[Annotation]:
    """Every annotator's newest annotation of each image (update time, then annotation id), across every export
    read: an annotator labeling an image twice is one vote, two annotators are two.

    One image in two tasks means it was imported twice, and one annotator's two different labels that are equally
    new (exports without times, or the same annotation edited in two exports): which label stands would be a guess,
    so both are errors naming the records.
    """
    task_of: dict[str, Annotation] = {}
    best: dict[tuple[str, str], Annotation] = {}
    for a in annotations:
        first = task_of.setdefault(a.file, a)
        if None not in (a.task_id, first.task_id) and a.task_id != first.task_id:
            raise BpsrunError(
                f"{a.where}: {a.file} is labeled in two tasks ({first.task_id} in {first.where}, and {a.task_id}); "
                f"import each image once and label it there"
            )
        other = best.get((a.file, a.annotator))
        if other is not None and (a.updated_at, a.annotation_id) == (other.updated_at, other.annotation_id):
            if a.label != other.label:
                raise BpsrunError(
                    f"{a.where}: {a.file} is {a.label!r} here but {other.label!r} in {other.where}, and neither is "
                    f"newer; keep one export of the round (or export again, with annotation times) and rerun"
                )
            continue
        if other is None or (a.updated_at, a.annotation_id) > (other.updated_at, other.annotation_id):
            best[a.file, a.annotator] = a
    return list(best.values())


def read_export(path: Path) -> list[tuple[dict[str, Any], str]]:
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise BpsrunError(f"{path}: not UTF-8 text; export again from Label Studio as JSON-MIN") from None
    except json.JSONDecodeError as exc:
        raise BpsrunError(f"{path}: malformed JSON ({exc}); export again from Label Studio as JSON-MIN") from None
    return flatten(data, str(path))
