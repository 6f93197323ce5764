"""The NASA BPS microscopy bucket: meta.csv, the subset filter, and the particle-type proxy ground truth."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from bpsrun.errors import BpsrunError
from bpsrun.files import atomic_write_text

log = logging.getLogger("bpsrun")

META_COLUMNS = ["filename", "dose_Gy", "particle_type", "hr_post_exposure"]


@dataclass(frozen=True)
class Subset:
    """Which images a campaign uses. Dose levels are named per particle (Fe hi = 0.82 Gy, X-ray hi = 1.0 Gy)."""

    doses: tuple[str, ...] = ("hi",)
    hours: tuple[float, ...] = (4,)
    particles: tuple[str, ...] = ("Fe", "X-ray")
    max_images: int | None = None
    max_per_class: int | None = None
    seed: int = 0
    dose_levels: dict[str, dict[str, float]] = field(default_factory=dict)

    def key(self, meta: bytes) -> str:
        """A name for this subset of this meta.csv: the same filter on the same listing reuses its folder."""
        text = json.dumps(self.__dict__, sort_keys=True, default=list).encode() + meta
        return hashlib.blake2b(text, digest_size=6).hexdigest()


def parse_meta(data: bytes, source: str) -> list[dict[str, str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BpsrunError(f"{source}: not UTF-8 text; expected a CSV with header {','.join(META_COLUMNS)}") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    header = list(rows[0]) if rows else []
    missing = [c for c in META_COLUMNS if c not in header]
    if missing:
        raise BpsrunError(f"{source}: missing column(s) {missing}; expected header {','.join(META_COLUMNS)}")
    return rows


def dose_level(row: dict[str, str], levels: dict[str, dict[str, float]], source: str, line: int) -> str | None:
    try:
        dose = float(row["dose_Gy"])
    except ValueError:
        raise BpsrunError(f"{source}:{line}: dose_Gy={row['dose_Gy']!r} is not a number") from None
    for name, value in levels.get(row["particle_type"], {}).items():
        if abs(dose - value) < 1e-6:
            return name
    return None


def rank(name: str, seed: int) -> bytes:
    """A per-file order that does not move when the bucket grows: caps keep the same files."""
    return hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest()


def select_subset(rows: list[dict[str, str]], subset: Subset, source: str) -> list[dict[str, str]]:
    """Rows matching the dose levels, hours and particles, then capped per particle and in total."""
    unknown = sorted(set(subset.particles) - set(subset.dose_levels))
    if unknown:
        raise BpsrunError(
            f"dataset.subset.particles {unknown} have no dose_levels; known: {sorted(subset.dose_levels)}"
        )
    kept = []
    for line, row in enumerate(rows, start=2):
        if row["particle_type"] not in subset.particles:
            continue
        try:
            hours = float(row["hr_post_exposure"])
        except ValueError:
            raise BpsrunError(
                f"{source}:{line}: hr_post_exposure={row['hr_post_exposure']!r} is not a number"
            ) from None
        if hours in subset.hours and dose_level(row, subset.dose_levels, source, line) in subset.doses:
            kept.append(row)
    if subset.max_per_class is not None:
        by_particle: dict[str, list[dict[str, str]]] = {}
        for row in kept:
            by_particle.setdefault(row["particle_type"], []).append(row)
        kept = [
            r
            for group in by_particle.values()
            for r in sorted(group, key=lambda r: rank(r["filename"], subset.seed))[: subset.max_per_class]
        ]
    if subset.max_images is not None:
        kept = sorted(kept, key=lambda r: rank(r["filename"], subset.seed))[: subset.max_images]
    if not kept:
        raise BpsrunError(
            f"{source}: no image matches dataset.subset (doses {list(subset.doses)}, hours {list(subset.hours)}, "
            f"particles {list(subset.particles)}); widen the filter"
        )
    return sorted(kept, key=lambda r: r["filename"])


def write_subset(folder: Path, rows: list[dict[str, str]], truth_of: dict[str, str], column: str) -> None:
    """meta.csv (the subset, BPS columns) and truth.csv (the oracle's proxy labels), truth last: it marks done."""
    unknown = sorted({r[column] for r in rows} - set(truth_of))
    if unknown:
        raise BpsrunError(f"dataset.oracle.classes has no class for {column} values {unknown}; add them")
    meta = io.StringIO()
    writer = csv.writer(meta, lineterminator="\n")
    writer.writerow(META_COLUMNS)
    writer.writerows([r[c] for c in META_COLUMNS] for r in rows)
    truth = io.StringIO()
    writer = csv.writer(truth, lineterminator="\n")
    writer.writerow(["filename", "label"])
    writer.writerows([r["filename"], truth_of[r[column]]] for r in rows)
    atomic_write_text(folder / "meta.csv", meta.getvalue())
    atomic_write_text(folder / "truth.csv", truth.getvalue())
