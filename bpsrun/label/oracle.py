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
from bpsrun.label.consensus import annotator_of
from bpsrun.label.jsonmin import file_of, read_records, record


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


def draw(seed: int, round_: int, file: str, annotator: str, stream: int) -> np.random.Generator:
    """A generator for one annotation, from the seed, round, file and annotator: reruns and a changed order of
    picks give the same draws. `stream` keeps the time and the error apart."""
    return np.random.default_rng([seed, round_, zlib.crc32(file.encode()), zlib.crc32(annotator.encode()), stream])


def simulated_seconds(seed: int, round_: int, file: str, annotator: str, median_seconds: float, sigma: float) -> float:
    """A model of one annotation's time, not a measurement: lognormal around `median_seconds`."""
    return float(median_seconds * np.exp(sigma * draw(seed, round_, file, annotator, 0).standard_normal()))


def simulated_label(
    seed: int, round_: int, file: str, annotator: str, truth: str, error_rate: float, classes: list[str]
) -> str:
    """A model of one annotator's label, not a measurement: the truth, or with probability `error_rate` another
    class drawn uniformly."""
    rng = draw(seed, round_, file, annotator, 1)
    if rng.random() >= error_rate:
        return truth
    others = [c for c in classes if c != truth]
    return others[int(rng.integers(len(others)))]


def assign(
    files: list[str], names: list[str], earlier: dict[str, set[str]], overlapping: set[str]
) -> list[tuple[str, str]]:
    """(file, annotator) pairs: the files in turn to the annotators who have not labeled them yet (all of those
    for an `overlapping` file), so the work is shared evenly and a re-label goes to someone new."""
    pairs = []
    for i, file in enumerate(files):
        free = [a for a in names if a not in earlier.get(file, set())] or names
        count = len(free) if file in overlapping else 1
        pairs += [(file, free[(i + j) % len(free)]) for j in range(count)]
    return pairs


def check_annotators(annotators: dict[str, float], overlap: float) -> None:
    if not annotators:
        raise BpsrunError("labeling.annotators is empty; give at least one, e.g. {oracle: 0.0}")
    for name, rate in annotators.items():
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise BpsrunError(f"labeling.annotators.{name}={rate!r}: an error rate is a share in [0, 1]")
    if not 0 <= overlap <= 1:
        raise BpsrunError(f"labeling.overlap={overlap}: a share of the images in [0, 1]")
    if overlap > 0 and len(annotators) < 2:
        raise BpsrunError(
            f"labeling.overlap={overlap} needs two or more labeling.annotators (has {list(annotators)}); add one, "
            f"e.g. labeling.annotators.second=0.1"
        )


class Oracle:
    """Simulated annotators labeling from ground truth, as JSON-MIN records shaped like a Label Studio export.

    Each annotator has an error rate (labels flipped, seeded) and, with `median_seconds`, a time per annotation:
    both are models, not measurements. Each image goes to one annotator in turn; an `overlap` share of each
    round's images (drawn with the seed) goes to every annotator who has not labeled it yet.
    """

    def __init__(
        self,
        context: LabelContext,
        annotators: dict[str, float] | None = None,
        overlap: float = 0.0,
        median_seconds: float | None = None,
        sigma: float = 0.5,
        seed: int = 0,
    ):
        if context.truth_csv is None:
            raise BpsrunError("labeling=oracle needs ground truth; set dataset.truth_csv=FILE (filename,label)")
        if median_seconds is not None and not median_seconds > 0:
            raise BpsrunError(f"labeling.median_seconds={median_seconds}: use seconds > 0, or null for no times")
        self.annotators = dict(annotators or {"oracle": 0.0})
        check_annotators(self.annotators, overlap)
        self.truth_csv = Path(context.truth_csv)
        self.classes, self.layout = context.classes, context.layout
        self.overlap, self.median_seconds, self.sigma, self.seed = overlap, median_seconds, sigma, seed
        self._truth: dict[str, str] | None = None

    @property
    def truth(self) -> dict[str, str]:
        if self._truth is None:
            self._truth = read_truth(self.truth_csv, self.classes)
        return self._truth

    def earlier(self, round_: int) -> dict[str, set[str]]:
        """file -> the annotators who labeled it in rounds before `round_`."""
        out: dict[str, set[str]] = {}
        for k in range(1, round_):
            for rec in read_records(self.layout.labels(k), self.classes):
                out.setdefault(file_of(rec), set()).add(annotator_of(rec))
        return out

    def overlapping(self, round_: int, files: list[str]) -> set[str]:
        k = round(self.overlap * len(files))
        rng = np.random.default_rng([self.seed, round_, 2])
        return {files[i] for i in rng.permutation(len(files))[:k]}

    def label(self, round_: int, files: list[str], validation: list[str]) -> list[dict[str, Any]]:
        missing = [f for f in [*files, *validation] if f not in self.truth]
        if missing:
            raise BpsrunError(f"{self.truth_csv}: no ground truth for {missing[:3]} ({len(missing)} files); add rows")
        names, earlier = list(self.annotators), self.earlier(round_)
        both = self.overlapping(round_, files) | self.overlapping(round_, validation)
        pairs = assign(files, names, earlier, both) + assign(validation, names, earlier, both)
        records = []
        for i, (f, annotator) in enumerate(pairs, start=1):
            error_rate = self.annotators[annotator]
            label = simulated_label(self.seed, round_, f, annotator, self.truth[f], error_rate, self.classes)
            rec = record(i, f, f"/data/local-files/?d={quote(f)}", label, annotator=annotator)
            if self.median_seconds is not None:  # without a time model records carry no lead_time (unknown)
                rec["lead_time"] = simulated_seconds(self.seed, round_, f, annotator, self.median_seconds, self.sigma)
            records.append(rec)
        return records
