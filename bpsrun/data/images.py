"""Reading microscopy images and turning them into model input.

Normalisation (documented in the README): each 16-bit image is stretched between its own 0.5th and 99.8th
intensity percentiles, so that the nucleoplasm sits near 0 and the brightest foci near 1, independent of the
plate's exposure; values are clipped to [-0.5, 2]. Images are padded to a square with their own background
(the 1st percentile) and resized to `size` x `size` with antialiasing, so nuclei keep their aspect ratio.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tifffile
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from bpsrun.errors import BpsrunError

LOW_PCT, HIGH_PCT = 0.5, 99.8


def read_image(path: Path) -> np.ndarray:
    """A 2-D integer image from a TIFF or PNG; anything else is a BpsrunError naming the file."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            img = tifffile.imread(path)
        else:
            with Image.open(path) as im:
                img = np.asarray(im)
    except FileNotFoundError:
        raise BpsrunError(f"{path}: image listed in meta.csv does not exist; add it or remove its row") from None
    except Exception as exc:  # decoders (tifffile, imagecodecs, zlib, PIL) each raise their own types
        raise BpsrunError(f"{path}: not a readable image ({exc}); replace the file or remove its row") from None
    if img.size == 0:
        raise BpsrunError(
            f"{path}: not a readable image (no pixel data, shape {img.shape}); replace the file or remove its row"
        )
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 2:
        raise BpsrunError(f"{path}: expected one channel, got shape {img.shape}; export single-channel images")
    if not np.issubdtype(img.dtype, np.integer):
        raise BpsrunError(f"{path}: expected 8- or 16-bit integer pixels, got {img.dtype}; convert to uint16")
    return img


def normalize(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, (LOW_PCT, HIGH_PCT))
    out = (img.astype(np.float32) - lo) / max(hi - lo, 1.0)
    return np.clip(out, -0.5, 2.0)


def to_square(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape
    side = max(h, w)
    square = np.full((side, side), np.percentile(img, 1), dtype=np.float32)
    y, x = (side - h) // 2, (side - w) // 2
    square[y : y + h, x : x + w] = img
    t = torch.from_numpy(square)[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0, 0].numpy()


def load_tensor(path: Path, size: int) -> np.ndarray:
    """One image as model input: float32, `size` x `size`."""
    return to_square(normalize(read_image(path)), size)


def load_stack(paths: list[Path], size: int, desc: str = "loading images") -> np.ndarray:
    """All images as an (N, 1, size, size) float16 array (half the memory; precision is ample here)."""
    out = np.empty((len(paths), 1, size, size), dtype=np.float16)
    for i, p in enumerate(tqdm(paths, desc=desc, unit="img", leave=False)):
        out[i, 0] = load_tensor(p, size)
    return out


def render_8bit(img: np.ndarray) -> np.ndarray:
    """An 8-bit rendering for people (grids, Label Studio): the same percentile stretch, clipped to [0, 1]."""
    lo, hi = np.percentile(img, (LOW_PCT, HIGH_PCT))
    return (np.clip((img.astype(np.float32) - lo) / max(hi - lo, 1.0), 0, 1) * 255).astype(np.uint8)


def png_bytes(path: Path) -> bytes:
    """The image as an 8-bit grayscale PNG (render_8bit's stretch); deterministic bytes for a given file."""
    buffer = io.BytesIO()
    Image.fromarray(render_8bit(read_image(path)), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
