"""A deterministic generator of BPS-like nuclei: 16-bit single-nucleus TIFFs, meta.csv, truth.csv and subpops.csv.

The class is what the image shows, drawn independently of the metadata, so that no metadata-only model can beat
the majority class: `track` (53BP1 foci strung along an ion path), `scattered` (many foci at random, no track) and
`few foci` (0-3 foci, no track); a binary task merges the last two into `no track`. Each (particle, dose, hours)
condition is one plate, as in the real BPS data; conditions change only nuisances that say nothing about the class:
plate brightness and its drift over the fields, focus blur and its drift, nucleus size, and the number of dim
background foci (which grows with dose and fades with repair, like real background damage).

Within each class, sub-populations of different size and difficulty (`SUBPOPS`): long tracks are easy, short
tracks (3-4 dimmer foci) hard; scattered foci that line up by chance, and three loosely aligned foci, are hard negatives.
Across classes, nuclei cut by the image border and a rare morphology (a bent, elongated nucleus beside a bright
micronucleus) replace the usual layout. subpops.csv records each image's sub-population, for analysis only.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from scipy.ndimage import gaussian_filter

from bpsrun.errors import BpsrunError
from bpsrun.files import atomic_dir
from bpsrun.progress import progress

DOSES: dict[str, tuple[float, float, float]] = {"Fe": (0.0, 0.3, 0.82), "X-ray": (0.0, 0.1, 1.0)}
HOURS = (4, 24, 48)
DOSE_LEVEL_WEIGHTS = (0.2, 0.3, 0.5)  # low, med, hi: most BPS work uses the high dose
REPAIR = {4: 1.0, 24: 0.55, 48: 0.35}  # fraction of background damage still visible
GROWTH = {4: 0.93, 24: 1.0, 48: 1.07}  # nuclei grow in the days after exposure
WELLS = [f"{r}{c}" for r in "ABCDEFGH" for c in range(1, 13)]
FIELDS = 30  # fields imaged per well; plates drift in brightness and focus from the first to the last

FINE_CLASSES = ("track", "scattered", "few foci")
CLASS_MIX = (0.38, 0.34, 0.28)  # the same on every plate
# the class lists a task may ask for (task.classes), keyed by the name in the dataset's folder
CLASS_LISTS: dict[str, tuple[str, ...]] = {"binary": ("track", "no track"), "3class": FINE_CLASSES}
BINARY = {"track": "track", "scattered": "no track", "few foci": "no track"}

# each fine class's foci patterns and their shares of it
PATTERNS: dict[str, tuple[tuple[str, float], ...]] = {
    "track": (("long track", 0.25), ("short track", 0.45), ("track in clutter", 0.3)),
    "scattered": (("dense scatter", 0.3), ("sparse scatter", 0.35), ("chance alignment", 0.35)),
    "few foci": (("no foci", 0.2), ("one to three foci", 0.45), ("aligned triple", 0.35)),
}
# layouts that replace the usual centred nucleus, whatever the class; the image's sub-population is then the layout
LAYOUTS = (("border cut", 0.08), ("rare morphology", 0.05))
NORMAL = 1 - sum(p for _, p in LAYOUTS)
SUBPOPS: dict[str, float] = {
    **{name: NORMAL * mix * share for (cls, mix) in zip(FINE_CLASSES, CLASS_MIX) for name, share in PATTERNS[cls]},
    **dict(LAYOUTS),
}  # each sub-population's expected share of the images


def task_of(classes: Sequence[str]) -> str:
    """The task a class list names ("binary" or "3class"); any other list is refused."""
    for task, names in CLASS_LISTS.items():
        if tuple(classes) == names:
            return task
    allowed = " or ".join("[" + ", ".join(names) + "]" for names in CLASS_LISTS.values())
    raise BpsrunError(
        f"dataset=synthetic: task.classes={list(classes)} is not a class list it generates; use {allowed} "
        f"(task=binary or task=three_class)"
    )


@dataclass(frozen=True)
class SyntheticSpec:
    num_images: int
    seed: int
    classes: tuple[str, ...] = CLASS_LISTS["binary"]
    wells_per_plate: int = 6

    def __post_init__(self) -> None:
        task_of(self.classes)

    @property
    def folder_name(self) -> str:
        """Binary and 3-class datasets hold the same images but different truth, so never one folder."""
        return f"synthetic-n{self.num_images}-s{self.seed}-{task_of(self.classes)}"

    def label(self, fine: str) -> str:
        return BINARY[fine] if task_of(self.classes) == "binary" else fine


@dataclass(frozen=True)
class Condition:
    plate: int
    barcode: str
    particle: str
    dose: float
    level: int
    hours: int


@dataclass(frozen=True)
class Plate:
    """One condition's plate and its nuisances: none depends on the class."""

    cond: Condition
    wells: tuple[str, ...]
    gain: float  # exposure
    bleach: float  # brightness lost from the first field to the last
    blur: float  # focus blur (Gaussian sigma, pixels) at the first field
    blur_drift: float  # blur gained by the last field
    side: float  # mean image side: nucleus size
    dim_foci: float  # mean number of dim background foci


def conditions(seed: int) -> list[Condition]:
    """One plate per (particle, dose, hours) condition, like the BPS data's confound."""
    rng = np.random.default_rng([seed, 7])
    out = []
    plate = 240
    for particle, doses in DOSES.items():
        for level, dose in enumerate(doses):
            for hours in HOURS:
                barcode = "".join(str(d) for d in rng.integers(0, 10, 11))
                out.append(Condition(plate, barcode, particle, dose, level, hours))
                plate += 1
    return out


def plates(seed: int, wells_per_plate: int) -> list[Plate]:
    rng = np.random.default_rng([seed, 1])
    out = []
    for cond in conditions(seed):
        wells = tuple(str(w) for w in rng.choice(WELLS, wells_per_plate, replace=False))
        gain, bleach = rng.uniform(0.85, 1.15), rng.uniform(0.0, 0.15)
        blur, drift = rng.uniform(0.6, 1.5), rng.uniform(0.0, 0.6)
        side = 140 * GROWTH[cond.hours] * rng.uniform(0.96, 1.04)
        dim = 1.0 + 5.0 * cond.level * REPAIR[cond.hours]
        out.append(Plate(cond, wells, gain, bleach, blur, drift, side, dim))
    return out


def condition_weights(conds: list[Condition]) -> np.ndarray:
    w = np.array([DOSE_LEVEL_WEIGHTS[c.level] for c in conds])
    return w / w.sum()


def draw(rng: np.random.Generator, table: Sequence[tuple[str, float]]) -> str:
    names, shares = zip(*table)
    return names[int(rng.choice(len(names), p=np.array(shares) / sum(shares)))]


def outline(u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A soft edge around the unit circle in (u, v), with a wobbly outline: values in [0, 1]."""
    angle = np.arctan2(v, u)
    wobble = 1 + 0.06 * np.sin(3 * angle + rng.uniform(0, 6.3)) + 0.04 * np.sin(5 * angle + rng.uniform(0, 6.3))
    return np.clip((1.08 - np.sqrt(u**2 + v**2) / wobble) / 0.16, 0, 1)


def nucleus(rng: np.random.Generator, h: int, w: int, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """The nucleus mask (where foci may lie) and the stained area (the nucleus plus any micronucleus)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h / 2 + rng.normal(0, 3), w / 2 + rng.normal(0, 3)
    if layout == "rare morphology":  # long and bent along the image's longer side, as a dividing or bean nucleus
        theta = (0.0 if w >= h else math.pi / 2) + rng.normal(0, 0.15)
        ax, ay = max(h, w) * rng.uniform(0.42, 0.46), min(h, w) * rng.uniform(0.2, 0.25)
    else:
        theta = rng.uniform(0, math.pi)
        ay, ax = h * rng.uniform(0.34, 0.44), w * rng.uniform(0.34, 0.44)
    if layout == "border cut":  # a tenth to a quarter of the nucleus lies outside the field
        shift = rng.choice([-1, 1]) * rng.uniform(0.2, 0.32)
        cy, cx = (cy + shift * h, cx) if rng.random() < 0.5 else (cy, cx + shift * w)
    dy, dx = yy - cy, xx - cx
    u = (dx * math.cos(theta) + dy * math.sin(theta)) / ax
    v = (-dx * math.sin(theta) + dy * math.cos(theta)) / ay
    if layout != "rare morphology":
        mask = outline(u, v, rng)
        return mask, mask
    bend = rng.uniform(0.4, 0.7)
    mask = outline(u, v + bend * (u**2 - 0.5), rng)
    # a micronucleus on the concave side: round, bright, bigger than a focus
    r = rng.uniform(4.0, 6.0)
    along, off = rng.uniform(-0.3, 0.3) * ax, -(ay * (1 + 0.5 * bend) + r + 3)
    my = np.clip(cy + along * math.sin(theta) + off * math.cos(theta), r + 2, h - r - 2)
    mx = np.clip(cx + along * math.cos(theta) - off * math.sin(theta), r + 2, w - r - 2)
    micro = np.clip((r - np.sqrt((yy - my) ** 2 + (xx - mx) ** 2)) / 1.5, 0, 1) * rng.uniform(1.6, 2.6)
    return mask, np.maximum(mask, micro)


def line_points(
    rng: np.random.Generator, inner: np.ndarray, mask: np.ndarray, n: int, step: tuple[float, float], jitter: float
) -> np.ndarray:
    """`n` points along a straight line inside the nucleus, `step` apart and `jitter` off the line."""
    h, w = mask.shape
    for _ in range(60):
        cy, cx = inner[rng.integers(len(inner))]
        phi, gap = rng.uniform(0, math.pi), rng.uniform(*step)
        offsets = (np.arange(n) - (n - 1) / 2) * gap + rng.normal(0, jitter, n)
        across = rng.normal(0, jitter, n)
        ys = cy + offsets * math.sin(phi) + across * math.cos(phi)
        xs = cx + offsets * math.cos(phi) - across * math.sin(phi)
        yi, xi = ys.astype(int), xs.astype(int)
        inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        if inside.all() and (mask[yi, xi] > 0.5).all():
            return np.stack([ys, xs], axis=1)
    return np.stack([ys, xs], axis=1)[inside]  # a line too long for this nucleus: what fits of the last try


def scatter(rng: np.random.Generator, inner: np.ndarray, n: int) -> np.ndarray:
    return inner[rng.integers(0, len(inner), n)] + rng.uniform(-0.5, 0.5, (n, 2))


def pattern_foci(
    rng: np.random.Generator, pattern: str, inner: np.ndarray, mask: np.ndarray
) -> list[tuple[np.ndarray, tuple[float, float]]]:
    """The bright foci of a pattern, as groups of (points, amplitude range)."""
    bright = (400.0, 1400.0)

    def track(lo: int, hi: int) -> np.ndarray:  # foci 5-8 px apart, tight to the path
        return line_points(rng, inner, mask, int(rng.integers(lo, hi + 1)), (5.0, 8.0), 0.9)

    def chance(n: int) -> np.ndarray:  # in a line by chance: twice as far apart and looser than a track
        return line_points(rng, inner, mask, n, (12.0, 18.0), 2.0)

    def some(lo: int, hi: int) -> np.ndarray:
        return scatter(rng, inner, int(rng.integers(lo, hi + 1)))

    groups = {
        "long track": lambda: [(track(5, 10), bright), (some(0, 3), bright)],
        "short track": lambda: [(track(3, 4), (300.0, 900.0)), (some(0, 1), bright)],
        "track in clutter": lambda: [(track(5, 8), bright), (some(4, 10), bright)],
        "dense scatter": lambda: [(some(12, 28), bright)],
        "sparse scatter": lambda: [(some(5, 8), bright)],
        "chance alignment": lambda: [(chance(int(rng.integers(3, 5))), bright), (some(4, 8), bright)],
        "no foci": lambda: [],
        "one to three foci": lambda: [(some(1, 3), bright)],
        "aligned triple": lambda: [(chance(3), bright)],
    }
    return groups[pattern]()


def add_focus(layer: np.ndarray, y: float, x: float, amp: float, sigma: float) -> None:
    """A Gaussian focus; overlapping foci keep the brighter, as in a maximum-intensity projection."""
    h, w = layer.shape
    r = int(3 * sigma) + 1
    y0, y1 = max(int(y) - r, 0), min(int(y) + r + 1, h)
    x0, x1 = max(int(x) - r, 0), min(int(x) + r + 1, w)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.ogrid[y0:y1, x0:x1]
    spot = amp * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    np.maximum(layer[y0:y1, x0:x1], spot, out=layer[y0:y1, x0:x1])


def render(rng: np.random.Generator, plate: Plate, field: int, fine: str) -> tuple[np.ndarray, str]:
    """One nucleus image (uint16) showing class `fine`, and its sub-population."""
    pattern = draw(rng, PATTERNS[fine])
    layout = draw(rng, (*LAYOUTS, ("normal", NORMAL)))
    h, w = (int(np.clip(v, 100, 180)) for v in rng.normal(plate.side, 14, 2))
    mask, stained = nucleus(rng, h, w, layout)
    inner = np.argwhere(mask > 0.6)
    drift = (field - 1) / (FIELDS - 1)
    gain = plate.gain * (1 - plate.bleach * drift) * rng.uniform(0.95, 1.05)

    texture = gaussian_filter(rng.normal(0, 1, (h, w)), 3.0) * 25
    img = 300 * gain + stained * (rng.uniform(130, 330) * gain + texture)
    foci = np.zeros((h, w))
    for points, (lo, hi) in pattern_foci(rng, pattern, inner, mask):
        for y, x in points:
            add_focus(foci, y, x, amp=rng.uniform(lo, hi) * gain, sigma=rng.uniform(1.3, 2.3))
    for y, x in scatter(rng, inner, rng.poisson(plate.dim_foci)):
        add_focus(foci, y, x, amp=rng.uniform(60, 170) * gain, sigma=rng.uniform(1.0, 1.8))
    img = gaussian_filter(img + foci, plate.blur + plate.blur_drift * drift)
    img += rng.normal(0, 1, img.shape) * np.sqrt(np.maximum(img - 250, 1.0)) * 1.2 + rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 65535).astype(np.uint16), pattern if layout == "normal" else layout


def file_name(cond: Condition, well: str, field: int, obj: int) -> str:
    return f"P{cond.plate}_{cond.barcode}-{well}_{field:03d}_{obj:03d}_proj.tif"


def generate(spec: SyntheticSpec, out: Path) -> Path:
    """Write images/, meta.csv, truth.csv and subpops.csv under `out` (atomically: all or nothing). Idempotent."""
    if (out / "truth.csv").exists():
        return out
    plate_list = plates(spec.seed, spec.wells_per_plate)
    rng = np.random.default_rng([spec.seed, 3])
    picks = rng.choice(len(plate_list), spec.num_images, p=condition_weights([p.cond for p in plate_list]))
    with atomic_dir(out) as tmp:
        (tmp / "images").mkdir()
        meta_rows, truth_rows, subpop_rows, objects = [], [], [], Counter()
        for i, c in enumerate(progress(picks, desc="synthesising nuclei", unit="img")):
            img_rng = np.random.default_rng([spec.seed, 2, i])
            plate = plate_list[c]
            fine = FINE_CLASSES[int(img_rng.choice(len(FINE_CLASSES), p=CLASS_MIX))]  # whatever the plate
            site = (c, str(img_rng.choice(plate.wells)), int(img_rng.integers(1, FIELDS + 1)))
            objects[site] += 1  # object ids count up within a field, as in the real data
            name = file_name(plate.cond, site[1], site[2], objects[site])
            img, subpop = render(img_rng, plate, site[2], fine)
            tifffile.imwrite(tmp / "images" / name, img, compression="zlib")
            meta_rows.append([name, plate.cond.dose, plate.cond.particle, plate.cond.hours])
            truth_rows.append([name, spec.label(fine)])
            subpop_rows.append([name, subpop])
        write_csv(tmp / "meta.csv", ["filename", "dose_Gy", "particle_type", "hr_post_exposure"], meta_rows)
        write_csv(tmp / "subpops.csv", ["filename", "subpop"], subpop_rows)
        write_csv(tmp / "truth.csv", ["filename", "label"], truth_rows)
    return out


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
