"""Reading microscopy images and turning them into model input.

Normalisation (documented in the README): each 16-bit image is stretched between its own 0.5th and 99.8th
intensity percentiles, so that the nucleoplasm sits near 0 and the brightest foci near 1, independent of the
plate's exposure; values are clipped to [-0.5, 2]. Images are padded to a square with their own background
(the 1st percentile) and resized to `size` x `size` with antialiasing, so nuclei keep their aspect ratio.
`benchmarks/tiff_ingest.py` measures this path against bare `tifffile.imread`.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tifffile
from PIL import Image
from scipy import sparse

from bpsrun.errors import BpsrunError
from bpsrun.progress import progress

LOW_PCT, HIGH_PCT = 0.5, 99.8
STACK_RUN = 32  # files per decoding task
STACK_CHUNK = 4096  # images per chunk written by write_stack (at 96 px, 72 MiB of float16)
# the largest image read: 128 MiB of uint16 pixels, under 1 GiB at peak while normalised (a nucleus crop is ~150 px)
MAX_PIXELS = 8192 * 8192


def read_tiff(path: Path) -> np.ndarray:
    """What `tifffile.imread(path)` returns, one thread (the loader runs a thread per core already).

    imread's series analysis costs a fifth of a small image's read. A lone page (no SubIFDs) whose tifffile
    metadata states exactly its own shape, as `tifffile.imwrite` writes a plain array, is its own series.
    """
    with tifffile.TiffFile(path) as tif:
        if len(tif.pages) > 1:  # a z-stack or a multi-image file: which page is the nucleus would be a guess
            raise BpsrunError(
                f"{path}: a TIFF of {len(tif.pages)} pages; bpsrun reads one image per file: save the page you mean "
                f"(e.g. a projection) as its own file"
            )
        if len(tif.pages) == 1:
            page = tif.pages.first
            if math.prod(page.shape) > MAX_PIXELS:  # refused from the header, before any pixel is decoded
                raise BpsrunError(
                    f"{path}: {' x '.join(map(str, page.shape))} pixels, more than bpsrun reads ({MAX_PIXELS:,}); "
                    f"crop the nucleus or downsample the image"
                )
            if page.subifds is None and page.shaped_description == f'{{"shape": {list(page.shape)}}}':
                return page.asarray(maxworkers=1)
        return tif.asarray(maxworkers=1)


def read_image(path: Path) -> np.ndarray:
    """A 2-D integer image from a TIFF or PNG; anything else is a BpsrunError naming the file."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            img = read_tiff(path)
        else:
            with Image.open(path) as im:
                img = np.asarray(im)
    except FileNotFoundError:
        raise BpsrunError(f"{path}: image listed in meta.csv does not exist; add it or remove its row") from None
    except BpsrunError:
        raise
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
    if img.dtype.kind not in "iu":
        raise BpsrunError(f"{path}: expected 8- or 16-bit integer pixels, got {img.dtype}; convert to uint16")
    return img


def percentiles(img: np.ndarray, q: tuple[float, ...]) -> list[float]:
    """np.percentile's (linear) values for an integer image, from its histogram: exact, and no sort.

    The histogram is the work; the few ranks are Python floats, the same float64 arithmetic as numpy's without a
    numpy call per step.
    """
    flat = img.ravel()
    # 8- and 16-bit unsigned pixels are at most 65536 bins as they are; others count from their minimum (bincount
    # takes no negatives, and wider types could span far more bins than pixels)
    low = 0 if flat.dtype.kind == "u" and flat.itemsize <= 2 else int(flat.min())
    cumulative = np.cumsum(np.bincount(flat - low if low else flat))
    ranks = [p / 100 * (flat.size - 1) for p in q]
    below = [math.floor(rank) for rank in ranks]
    found = np.searchsorted(cumulative, below + [math.ceil(rank) for rank in ranks], side="right").tolist()
    v_below, v_above = found[: len(q)], found[len(q) :]
    return [low + v + (up - v) * (rank - b) for v, up, rank, b in zip(v_below, v_above, ranks, below, strict=True)]


@lru_cache(maxsize=4096)
def resize_weights(n_in: int, n_out: int, start: int, length: int) -> sparse.csr_array:
    """Columns [start, start + length) of the (n_out, n_in) bilinear resize matrix, the triangle widened by the
    scale when shrinking (antialiased, as PIL and torch's antialias=True). Sparse: a few taps per row, and no
    BLAS threads to fight the loader's own."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centers = (np.arange(n_out) + 0.5) * scale
    w = np.maximum(0.0, 1.0 - np.abs(np.arange(n_in) + 0.5 - centers[:, None]) / support)
    w /= w.sum(axis=1, keepdims=True)
    return sparse.csr_array(w[:, start : start + length].astype(np.float32))


def load_array(img: np.ndarray, size: int) -> np.ndarray:
    """Normalise, pad to a square with the background and resize, as two sparse matrix products.

    The padded square is the background everywhere plus (image - background) at the centre, and resizing is
    linear with rows summing to 1, so only the weights' columns over the image are needed.
    """
    lo, background, hi = percentiles(img, (LOW_PCT, 1.0, HIGH_PCT))
    scale = 1.0 / max(hi - lo, 1.0)
    bg = np.float32(min(max((background - lo) * scale, -0.5), 2.0))
    # in place, one float32 image in all: the same float32 operations as the plain expression, so the same bits
    x = np.subtract(img, np.float32(lo), dtype=np.float32)
    x *= np.float32(scale)
    x.clip(-0.5, 2.0, out=x)
    x -= bg
    h, w = img.shape
    side = max(h, w)
    rows = resize_weights(side, size, (side - h) // 2, h)
    cols = resize_weights(side, size, (side - w) // 2, w)
    return (cols @ (rows @ x).T).T + bg


def load_tensor(path: Path, size: int) -> np.ndarray:
    """One image as model input: float32, `size` x `size`."""
    # a copy made once this image's buffers are freed: when a caller keeps thousands of results (a list), one
    # allocated among those buffers sends the next images' decode and temporaries to cold memory, ~8 % slower
    return load_array(read_image(path), size).copy()


def load_stack(paths: list[Path], size: int, desc: str = "loading images") -> np.ndarray:
    """All images as an (N, 1, size, size) float16 array (half the memory; precision is ample here)."""
    out = np.empty((len(paths), 1, size, size), dtype=np.float16)
    with decoding(len(paths), desc) as fill:
        fill(paths, out)
    return out


def write_stack(paths: list[Path], size: int, f: BinaryIO, desc: str = "loading images") -> None:
    """load_stack's array written into the open file `f` in .npy format, STACK_CHUNK images at a time: a pool of
    any size is decoded in bounded memory."""
    shape = (len(paths), 1, size, size)
    np.lib.format.write_array_header_1_0(f, {"descr": "<f2", "fortran_order": False, "shape": shape})
    with decoding(len(paths), desc) as fill:
        for start in range(0, len(paths), STACK_CHUNK):
            chunk = np.empty((min(STACK_CHUNK, len(paths) - start), 1, size, size), dtype="<f2")
            fill(paths[start : start + len(chunk)], chunk)
            f.write(chunk.tobytes())


@contextmanager
def decoding(total: int, desc: str) -> Iterator[Callable[[list[Path], np.ndarray], None]]:
    """fill(paths, out): decode `paths` into the rows of `out` on a thread per core, with one progress bar.

    Decoding (zlib) and the matrix products release the GIL, so a thread per core keeps them all busy. Each task
    is a run of files: a result per file would wake the main thread per file, a GIL hand-off each (~12 % slower).
    """
    with (
        ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool,
        progress(total=total, desc=desc, unit="img", leave=False) as bar,
    ):

        def fill(paths: list[Path], out: np.ndarray) -> None:
            def run(part: range) -> int:
                for i in part:
                    out[i, 0] = load_array(read_image(paths[i]), out.shape[-1])
                return len(part)

            runs = [range(k, min(k + STACK_RUN, len(paths))) for k in range(0, len(paths), STACK_RUN)]
            for done in pool.map(run, runs):
                bar.update(done)

        yield fill


def render_8bit(img: np.ndarray) -> np.ndarray:
    """An 8-bit rendering for people (grids, Label Studio): the same percentile stretch, clipped to [0, 1]."""
    lo, hi = np.percentile(img, (LOW_PCT, HIGH_PCT))
    return (np.clip((img.astype(np.float32) - lo) / max(hi - lo, 1.0), 0, 1) * 255).astype(np.uint8)


def png_bytes(path: Path) -> bytes:
    """The image as an 8-bit grayscale PNG (render_8bit's stretch); deterministic bytes for a given file."""
    buffer = io.BytesIO()
    Image.fromarray(render_8bit(read_image(path)), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
