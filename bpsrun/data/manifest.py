"""meta.csv in, manifest.csv out: every image with its split, group and metadata.

The split is stratified by a metadata column and can be grouped so that all images of one well (or plate)
land on the same side. In BPS each condition is one plate, so an ungrouped split lets a model score well by
recognising plates; `split.group_by=well` keeps wells whole.
"""

from __future__ import annotations

import csv
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpsrun.errors import BpsrunError
from bpsrun.files import atomic_file

BPS_NAME = re.compile(r"^P(?P<plate>\d+)_(?P<barcode>\d+)-(?P<well>[A-Z]+\d+)_(?P<field>\d+)_(?P<object>\d+)_proj\.")
GROUP_BY = ("none", "well", "plate")
VAL_LABELS = ("auto", "labeler", "truth")  # split.val_labels: who labels the validation sample
NAME_MAX = 255  # bytes per file name on common file systems
RENDER_SUFFIX = ".png"  # the longest name bpsrun derives from an image's: `<name>.png` renders for Label Studio


@dataclass(frozen=True)
class SplitSpec:
    val_size: float | int = 0.2  # a fraction of each stratum, or (an int) about that many images in all
    group_by: str = "none"
    stratify_by: str | None = None
    seed: int = 0

    def fraction(self, n_rows: int) -> float:
        if isinstance(self.val_size, float):
            return self.val_size
        if self.val_size >= n_rows:
            raise BpsrunError(
                f"split.val_size={self.val_size} images, but the dataset has {n_rows}; hold out fewer (a count "
                f"below {n_rows}, or a fraction such as 0.2)"
            )
        return self.val_size / n_rows


def name_problem(name: str) -> str | None:
    """Why `name` cannot be an image's file name (None if it can), with the fix.

    Names are plain file names directly in the dataset folder: bpsrun joins them to its own folders (Lightly's
    `<stem>.json`, `<name>.png` renders, `selected.txt` lines), so a name must not climb out (`..`, absolute), hide a
    folder (`/`, `\\`), break a line, or hide a file.
    """
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs"):
            what = "a line break" if ch in "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029" else "a control character"
            return f"has {what} (U+{ord(ch):04X}); rename the file"
    if name.startswith("/"):
        return "is an absolute path; list names relative to dataset.path"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "has a '..' part, which points outside dataset.path; list the images in dataset.path by their own names"
    if "\\" in name:
        return "has a backslash; rename the file (plain file names, no folders)"
    if "/" in name:
        return "is in a subfolder; put the images directly in dataset.path (no subfolders) and list their names"
    if name.startswith("."):
        return "is a hidden file (leading dot); rename the file"
    if len((name + RENDER_SUFFIX).encode()) > NAME_MAX:
        return f"is longer than {NAME_MAX - len(RENDER_SUFFIX)} bytes (bpsrun writes <name>{RENDER_SUFFIX}); shorten it"
    return None


def stem_key(name: str) -> str:
    """Lightly's metadata and prediction files are one `<stem>.json` per image, so stems must differ (also in case
    only: macOS and Windows file systems, and S3 syncs to them, do not tell `A.json` from `a.json`)."""
    return str(Path(name).with_suffix("")).casefold()


def read_meta(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Columns and rows of a meta.csv whose first column is `filename`; problems name the row and the fix."""
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            body = [(reader.line_num, values) for values in reader]
    except FileNotFoundError:
        raise BpsrunError(f"{path}: meta.csv not found; set dataset.path to a folder holding meta.csv") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BpsrunError(f"{path}: not a readable CSV ({exc}); save it as UTF-8 CSV") from None
    if not header or header[0].strip() != "filename":
        raise BpsrunError(f"{path}: the first column must be 'filename', got {header[:1] if header else 'nothing'}")
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise BpsrunError(f"{path}: duplicate column names in header {header}")
    rows: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    stems: dict[str, tuple[str, int]] = {}
    for line, values in body:
        if not values:
            continue
        if len(values) != len(header):
            raise BpsrunError(f"{path}:{line}: {len(values)} fields, header has {len(header)}; fix the row")
        row = dict(zip(header, (v.strip() for v in values)))
        name = row["filename"]
        if not name or name.lower() == "nan":
            raise BpsrunError(f"{path}:{line}: empty filename; fill it in or remove the row")
        problem = name_problem(name)
        if problem:
            raise BpsrunError(f"{path}:{line}: file name {name!r} {problem}")
        if name in seen:
            raise BpsrunError(
                f"{path}:{line}: duplicate filename {name!r} (also on line {seen[name]}); each image must be listed once"
            )
        other, other_line = stems.setdefault(stem_key(name), (name, line))
        if other_line != line:
            raise BpsrunError(
                f"{path}:{line}: {name!r} and {other!r} (line {other_line}) differ only in extension or case; "
                f"bpsrun writes one <stem>.json per image (Lightly's format), so rename one of them"
            )
        seen[name] = line
        rows.append(row)
    if not rows:
        raise BpsrunError(f"{path}: no images listed; add rows 'filename,...'")
    return header, rows


def group_key(name: str, group_by: str) -> str:
    if group_by == "none":
        return name
    m = BPS_NAME.match(name)
    if not m:
        raise BpsrunError(
            f"split.group_by={group_by} needs BPS file names (P<plate>_<barcode>-<well>_<field>_<object>_proj.*), "
            f"got {name!r}; use split.group_by=none"
        )
    return m["plate"] if group_by == "plate" else f"{m['plate']}-{m['well']}"


def split(rows: list[dict[str, str]], spec: SplitSpec) -> list[str]:
    """'train' or 'val' per row: whole groups per stratum, about the same share of each stratum in val.

    The stratify column is checked by the caller (prepare.check_strata), which can name the file.
    """
    if spec.group_by not in GROUP_BY:
        raise BpsrunError(f"split.group_by={spec.group_by!r} is not one of {GROUP_BY}")
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(group_key(row["filename"], spec.group_by), []).append(i)
    strata: dict[str, list[str]] = {}
    for key, members in groups.items():
        stratum = rows[members[0]][spec.stratify_by] if spec.stratify_by else ""
        strata.setdefault(stratum, []).append(key)
    rng = np.random.default_rng(spec.seed)
    fraction = spec.fraction(len(rows))
    out = ["train"] * len(rows)
    for stratum in sorted(strata):
        keys = sorted(strata[stratum])
        size = sum(len(groups[k]) for k in keys)
        target, taken = math.floor(fraction * size + 0.5), 0
        for k in (keys[j] for j in rng.permutation(len(keys))):
            if taken >= target or len(groups[k]) >= size - taken:  # keep some of each stratum for training
                continue
            for i in groups[k]:
                out[i] = "val"
            taken += len(groups[k])
    return out


def write_manifest(path: Path, header: list[str], rows: list[dict[str, str]], splits: list[str], root: Path) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "path", "split", *header[1:]])
        for row, part in zip(rows, splits):
            writer.writerow([row["filename"], str(root / row["filename"]), part, *(row[h] for h in header[1:])])


def read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
