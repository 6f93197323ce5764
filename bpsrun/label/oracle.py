"""The ground-truth oracle for simulated campaigns. Only this module reads the truth file."""

from __future__ import annotations

import csv
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from bpsrun.errors import BpsrunError
from bpsrun.label.base import LabelContext
from bpsrun.label.jsonmin import record


def read_truth(path: Path, classes: list[str]) -> dict[str, str]:
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = [(reader.line_num, row) for row in reader]  # physical line numbers: blank lines are skipped
    except FileNotFoundError:
        raise BpsrunError(f"{path}: truth file not found; set dataset.truth_csv or use a human labeler") from None
    if not rows or set(rows[0][1]) != {"filename", "label"}:
        raise BpsrunError(f"{path}: expected columns filename,label")
    truth: dict[str, str] = {}
    lines: dict[str, int] = {}
    for line, row in rows:
        if row["label"] not in classes:
            raise BpsrunError(f"{path}:{line}: unknown label {row['label']!r}; expected one of {classes}")
        name = row["filename"]
        if name in lines:
            same = "the same label" if truth[name] == row["label"] else f"{truth[name]!r}, then {row['label']!r}"
            raise BpsrunError(
                f"{path}:{line}: {name!r} is labeled again (first on line {lines[name]}, {same}); "
                f"keep one row per image"
            )
        truth[name], lines[name] = row["label"], line
    return truth


def simulated_seconds(seed: int, round_: int, file: str, median_seconds: float, sigma: float) -> float:
    """A model of one annotation's time, not a measurement: lognormal around `median_seconds`, drawn from the
    seed, round and file so that reruns and a changed order of picks give the same times."""
    rng = np.random.default_rng([seed, round_, zlib.crc32(file.encode())])
    return float(median_seconds * np.exp(sigma * rng.standard_normal()))


class Oracle:
    """Labels files from ground truth, as JSON-MIN records shaped like a Label Studio export."""

    def __init__(
        self,
        context: LabelContext,
        median_seconds: float | None = None,
        sigma: float = 0.5,
        seed: int = 0,
    ):
        if context.truth_csv is None:
            raise BpsrunError("labeling=oracle needs ground truth; set dataset.truth_csv=FILE (filename,label)")
        if median_seconds is not None and not median_seconds > 0:
            raise BpsrunError(f"labeling.median_seconds={median_seconds}: use seconds > 0, or null for no times")
        self.truth_csv = Path(context.truth_csv)
        self.classes = context.classes
        self.median_seconds, self.sigma, self.seed = median_seconds, sigma, seed
        self._truth: dict[str, str] | None = None

    @property
    def truth(self) -> dict[str, str]:
        if self._truth is None:
            self._truth = read_truth(self.truth_csv, self.classes)
        return self._truth

    def label(self, round_: int, files: list[str], validation: list[str]) -> list[dict[str, Any]]:
        files = [*files, *validation]
        missing = [f for f in files if f not in self.truth]
        if missing:
            raise BpsrunError(f"{self.truth_csv}: no ground truth for {missing[:3]} ({len(missing)} files); add rows")
        records = [
            record(i, f, f"/data/local-files/?d={quote(f)}", self.truth[f], annotator="oracle")
            for i, f in enumerate(files, start=1)
        ]
        if self.median_seconds is not None:  # without a time model records carry no lead_time (unknown)
            for rec in records:
                rec["lead_time"] = simulated_seconds(
                    self.seed, round_, rec["file_name"], self.median_seconds, self.sigma
                )
        return records
