"""A deterministic generator of BPS-like nuclei: 16-bit single-nucleus TIFFs, meta.csv and a truth file.

The physics it imitates (loosely): a heavy ion (Fe) crossing a nucleus leaves 53BP1 foci strung along its
path, X-rays leave foci scattered at random. Foci counts grow with dose and fall with hours after exposure
as DNA repair proceeds. Each (particle, dose, hours) condition is one plate, as in the real BPS data, and
plates differ slightly in brightness, so a model can cheat on plate effects unless the split is grouped.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from scipy.ndimage import gaussian_filter

from bpsrun.files import atomic_dir
from bpsrun.progress import progress

DOSES: dict[str, tuple[float, float, float]] = {"Fe": (0.0, 0.3, 0.82), "X-ray": (0.0, 0.1, 1.0)}
HOURS = (4, 24, 48)
DOSE_LEVEL_WEIGHTS = (0.2, 0.3, 0.5)  # low, med, hi: most BPS work uses the high dose
TRACK_PROB_BY_LEVEL = (0.0, 0.6, 0.85)  # Fe only; 0 Gy never has a track
REPAIR = {4: 1.0, 24: 0.55, 48: 0.35}  # fraction of foci still visible
WELLS = [f"{r}{c}" for r in "ABCDEFGH" for c in range(1, 13)]


@dataclass(frozen=True)
class SyntheticSpec:
    num_images: int
    seed: int
    wells_per_plate: int = 6
    short_track_prob: float = 0.12  # 2-3 foci: genuinely ambiguous
    chance_alignment_prob: float = 0.12  # scattered foci that happen to line up


@dataclass(frozen=True)
class Condition:
    plate: int
    barcode: str
    particle: str
    dose: float
    level: int
    hours: int


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


def condition_weights(conds: list[Condition]) -> np.ndarray:
    w = np.array([DOSE_LEVEL_WEIGHTS[c.level] for c in conds])
    return w / w.sum()


def nucleus_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A soft-edged ellipse with a wobbly outline, values in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h / 2 + rng.normal(0, 3), w / 2 + rng.normal(0, 3)
    ay, ax = h * rng.uniform(0.34, 0.44), w * rng.uniform(0.34, 0.44)
    theta = rng.uniform(0, math.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * math.cos(theta) + dy * math.sin(theta)) / ax
    v = (-dx * math.sin(theta) + dy * math.cos(theta)) / ay
    angle = np.arctan2(v, u)
    wobble = 1 + 0.06 * np.sin(3 * angle + rng.uniform(0, 6.3)) + 0.04 * np.sin(5 * angle + rng.uniform(0, 6.3))
    r = np.sqrt(u**2 + v**2) / wobble
    return np.clip((1.08 - r) / 0.16, 0, 1)


def add_focus(img: np.ndarray, y: float, x: float, amp: float, sigma: float) -> None:
    h, w = img.shape
    r = int(3 * sigma) + 1
    y0, y1 = max(int(y) - r, 0), min(int(y) + r + 1, h)
    x0, x1 = max(int(x) - r, 0), min(int(x) + r + 1, w)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    img[y0:y1, x0:x1] += amp * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))


def inside_points(rng: np.random.Generator, mask: np.ndarray, n: int) -> np.ndarray:
    ys, xs = np.nonzero(mask > 0.6)
    idx = rng.integers(0, len(ys), n)
    return np.stack([ys[idx], xs[idx]], axis=1).astype(np.float64) + rng.uniform(-0.5, 0.5, (n, 2))


def track_points(rng: np.random.Generator, mask: np.ndarray, n_foci: int) -> np.ndarray:
    """Foci along a straight ion path through the nucleus, with small jitter across the path."""
    h, w = mask.shape
    for _ in range(50):
        cy, cx = inside_points(rng, mask, 1)[0]
        phi = rng.uniform(0, math.pi)
        step = rng.uniform(5.0, 8.0)
        offsets = (np.arange(n_foci) - (n_foci - 1) / 2) * step + rng.normal(0, 0.8, n_foci)
        ys = cy + offsets * math.sin(phi) + rng.normal(0, 0.9, n_foci)
        xs = cx + offsets * math.cos(phi) + rng.normal(0, 0.9, n_foci)
        yi, xi = np.clip(ys.astype(int), 0, h - 1), np.clip(xs.astype(int), 0, w - 1)
        if (mask[yi, xi] > 0.5).all():
            return np.stack([ys, xs], axis=1)
    return np.stack([ys, xs], axis=1)


def chance_alignment(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Three scattered foci that happen to line up, spaced wider and looser than a real track."""
    pts = track_points(rng, mask, 3)
    centre = pts.mean(axis=0)
    return centre + (pts - centre) * rng.uniform(1.8, 2.6) + rng.normal(0, 1.8, pts.shape)


def render(rng: np.random.Generator, cond: Condition, plate_gain: float, spec: SyntheticSpec) -> tuple[np.ndarray, str]:
    """One nucleus image (uint16) and its ground-truth label."""
    h, w = (int(v) for v in rng.integers(100, 181, 2))
    mask = nucleus_mask(rng, h, w)
    texture = gaussian_filter(rng.normal(0, 1, (h, w)), 3.0) * 25
    nucleo = rng.uniform(130, 330) * plate_gain
    img = 300 * plate_gain + mask * (nucleo + texture)

    repair = REPAIR[cond.hours]
    xray_foci = 14 * cond.dose if cond.particle == "X-ray" else 3 * cond.dose
    n_scatter = rng.poisson(1.5 + xray_foci * repair)
    foci = [inside_points(rng, mask, n_scatter)] if n_scatter else []

    label = "no track"
    p_track = TRACK_PROB_BY_LEVEL[cond.level] * (0.75 + 0.25 * repair) if cond.particle == "Fe" else 0.0
    if rng.random() < p_track:
        label = "track"
        short = rng.random() < spec.short_track_prob
        n_track = int(rng.integers(2, 4)) if short else int(rng.integers(4, 10))
        foci.append(track_points(rng, mask, n_track))
    elif rng.random() < spec.chance_alignment_prob * (1 + cond.dose):
        foci.append(chance_alignment(rng, mask))

    for y, x in np.concatenate(foci) if foci else []:
        add_focus(img, y, x, amp=rng.uniform(350, 1500) * plate_gain, sigma=rng.uniform(1.3, 2.3))

    img = gaussian_filter(img, 0.8)
    img += rng.normal(0, 1, img.shape) * np.sqrt(np.maximum(img - 250, 1.0)) * 1.2 + rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 65535).astype(np.uint16), label


def file_name(cond: Condition, well: str, field: int, obj: int) -> str:
    return f"P{cond.plate}_{cond.barcode}-{well}_{field:03d}_{obj:03d}_proj.tif"


def generate(spec: SyntheticSpec, out: Path) -> Path:
    """Write images/, meta.csv and truth.csv under `out` (atomically: all or nothing). Idempotent."""
    if (out / "truth.csv").exists():
        return out
    conds = conditions(spec.seed)
    rng = np.random.default_rng([spec.seed, 1])
    gains = rng.uniform(0.92, 1.08, len(conds))
    wells = [rng.choice(WELLS, spec.wells_per_plate, replace=False) for _ in conds]
    picks = rng.choice(len(conds), spec.num_images, p=condition_weights(conds))
    with atomic_dir(out) as tmp:
        (tmp / "images").mkdir()
        meta_rows, truth_rows, objects = [], [], Counter()
        for i, c in enumerate(progress(picks, desc="synthesising nuclei", unit="img")):
            img_rng = np.random.default_rng([spec.seed, 2, i])
            cond = conds[c]
            site = (c, str(img_rng.choice(wells[c])), int(img_rng.integers(1, 30)))
            objects[site] += 1  # object ids count up within a field, as in the real data
            name = file_name(cond, site[1], site[2], objects[site])
            img, label = render(img_rng, cond, float(gains[c]), spec)
            tifffile.imwrite(tmp / "images" / name, img, compression="zlib")
            meta_rows.append([name, cond.dose, cond.particle, cond.hours])
            truth_rows.append([name, label])
        write_csv(tmp / "meta.csv", ["filename", "dose_Gy", "particle_type", "hr_post_exposure"], meta_rows)
        write_csv(tmp / "truth.csv", ["filename", "label"], truth_rows)
    return out


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
