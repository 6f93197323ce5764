"""The validation sample's labels: who gives them (`split.val_labels`), where they are kept, what is missing.

Validation images are never selected or trained on. Their labels come from the dataset's truth file (simulated
campaigns, the BPS particle-type proxy) or, in a campaign without ground truth, from the labeler: sent once, with
the first round that labels, marked as validation, and kept in `validation/labels.json`, apart from the rounds'
training labels. Until all are in, rounds train without metrics if `split.require_val=false`, and the metrics
of those rounds are computed once the last label arrives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bpsrun.errors import BpsrunError
from bpsrun.files import atomic_write_json
from bpsrun.label.consensus import majority
from bpsrun.label.jsonmin import file_of, read_records, record
from bpsrun.layout import Layout


def val_source(setting: str, truth_csv: Path | None) -> str:
    """'truth' or 'labeler': split.val_labels with `auto` decided by whether the dataset has ground truth."""
    if setting == "auto":
        return "truth" if truth_csv is not None else "labeler"
    if setting == "truth" and truth_csv is None:
        raise BpsrunError(
            "split.val_labels=truth needs ground truth; set dataset.truth_csv=FILE (filename,label), or "
            "split.val_labels=labeler to have the validation images labeled with the picks"
        )
    return setting


def truth_records(files: list[str], truth: dict[str, str]) -> list[dict[str, Any]]:
    return [record(i, f, f, truth[f], annotator="truth") for i, f in enumerate(files, start=1)]


def read_validation(layout: Layout, classes: list[str], seed: int) -> dict[str, str]:
    """file -> validation label: the majority of its annotators, ties by a seeded draw (never by a model: these
    labels judge the models)."""
    path = layout.validation_labels
    return majority(read_records(path, classes), classes, seed) if path.exists() else {}


def vote_of(rec: dict[str, Any]) -> tuple[str, str]:
    return file_of(rec), str(rec.get("annotator") or "unknown")


def keep_validation(layout: Layout, records: list[dict[str, Any]]) -> None:
    """Add labels of validation images to validation/labels.json (atomically): one record per image and
    annotator, the newer winning (an annotator's second label of an image is a correction, not a second vote)."""
    if not records:
        return
    path = layout.validation_labels
    kept = {vote_of(rec): rec for rec in (layout.read_state(path) if path.exists() else [])}
    kept.update({vote_of(rec): rec for rec in records})
    atomic_write_json(path, list(kept.values()))
