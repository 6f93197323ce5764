"""Selection at scale: our engine vs straightforward reference implementations, in the same run.

DIVERSITY picking 1,000 from 100,000 x 128 embeddings; TYPICALITY (k=20) on the same (our inverted-file search
against the exact chunked kNN it replaced above 10,000 samples); the three uncertainty scores on 1,000,000 x 2
probabilities. Time (wall) and peak memory (tracemalloc: numpy allocations) for each.
Prints a Markdown table and records it in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import math
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from common import record

from bpsrun.selection.greedy import Diversity, greedy_select
from bpsrun.selection.scores import entropy, least_confidence, margin
from bpsrun.selection.strategies import typicality


def measure(fn: Callable[[], object]) -> tuple[float, float, object]:
    tracemalloc.start()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, out


def kcenter_reference(x: np.ndarray, n: int) -> list[int]:
    """A bare loop: one matrix-vector product and a Euclidean distance update per pick, float64."""
    x = x.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    first = int(np.argmax(np.linalg.norm(x - x.mean(axis=0), axis=1)))
    dist = np.linalg.norm(x - x[first], axis=1)
    picks = [first]
    for _ in range(n - 1):
        i = int(np.argmax(dist))
        picks.append(i)
        dist = np.minimum(dist, np.sqrt(np.maximum(2 - 2 * x @ x[i], 0)))
    return picks


def typicality_chunked(x: np.ndarray, k: int, chunk: int = 512) -> np.ndarray:
    """The exact kNN in row chunks (memory O(chunk * N)): bpsrun's TYPICALITY before the inverted-file search."""
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    out = np.empty(len(x))
    for start in range(0, len(x), chunk):
        sims = x[start : start + chunk] @ x.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf
        top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
        out[start : start + chunk] = 1 / np.sqrt(np.maximum(2 - 2 * top, 0)).mean(axis=1)
    return out


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


def typicality_reference(x: np.ndarray, k: int) -> np.ndarray:
    """The full N x N distance matrix (only where it fits in memory)."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = np.sqrt(np.maximum(2 - 2 * x @ x.T, 0))
    np.fill_diagonal(d, np.inf)
    return 1 / np.sort(d, axis=1)[:, :k].mean(axis=1)


def scores_reference(p: np.ndarray) -> list[tuple[float, float, float]]:
    out = []
    for a, b in p.tolist():
        h = -sum(v * math.log2(v) for v in (a, b) if v > 0)
        out.append(((1 - max(a, b)) / 0.5, 1 - abs(a - b), h))
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    # clustered embeddings, as self-supervised features are: 200 centres, noise around them
    centres = rng.normal(size=(200, 128)).astype(np.float32)
    emb = centres[rng.integers(0, 200, 100_000)] + 0.5 * rng.normal(size=(100_000, 128)).astype(np.float32)
    p = rng.random(1_000_000)
    probs = np.stack([p, 1 - p], axis=1)
    rows = []

    t, m, ours = measure(lambda: greedy_select(1000, np.zeros(len(emb)), [Diversity(emb)]))
    tr, mr, ref = measure(lambda: kcenter_reference(emb, 1000))
    same = len(set(ours) & set(ref))
    rows.append(
        ("DIVERSITY 1,000 of 100,000 x 128", t, m, "bare numpy loop, float64", tr, mr, f"{same}/1000 same picks")
    )

    t, m, fast = measure(lambda: typicality(emb, 20))
    tr, mr, exact = measure(lambda: typicality_chunked(emb, 20))
    err = float(np.max(np.abs(fast - exact) / exact))
    check = f"max rel. diff {err:.1e}, rank corr. {rank_correlation(fast, exact):.4f}"
    rows.append(("TYPICALITY k=20 on 100,000 x 128", t, m, "exact kNN in row chunks (before)", tr, mr, check))
    sub = emb[:10_000]
    ts, ms, ours_sub = measure(lambda: typicality(sub, 20))
    tr, mr, ref_sub = measure(lambda: typicality_reference(sub, 20))
    err = float(np.max(np.abs(ours_sub - ref_sub) / ref_sub))
    rows.append(("TYPICALITY k=20 on 10,000 x 128", ts, ms, "full N x N matrix", tr, mr, f"max rel. diff {err:.1e}"))

    for name, fn in (("entropy", entropy), ("least_confidence", least_confidence), ("margin", margin)):
        t, m, _ = measure(lambda fn=fn: fn(probs))
        rows.append((f"uncertainty_{name} on 1,000,000 x 2", t, m, "", float("nan"), float("nan"), ""))
    tr, mr, _ = measure(lambda: scores_reference(probs))
    rows.append(
        (
            "all three scores on 1,000,000 x 2",
            sum(r[1] for r in rows[-3:]),
            max(r[2] for r in rows[-3:]),
            "plain Python loop",
            tr,
            mr,
            "",
        )
    )

    lines = [
        "`python benchmarks/selection_scaling.py`; peak memory is what numpy allocated (tracemalloc).",
        "",
        "| task | ours (s) | ours peak (MiB) | reference | ref (s) | ref peak (MiB) | ratio | check |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, t, m, ref_name, tr, mr, check in rows:
        ratio = f"{tr / t:.1f}x" if tr == tr else ""
        ref_t = f"{tr:.2f}" if tr == tr else ""
        ref_m = f"{mr:.0f}" if mr == mr else ""
        lines.append(f"| {task} | {t:.3f} | {m:.0f} | {ref_name} | {ref_t} | {ref_m} | {ratio} | {check} |")
    record("Selection scaling", lines)


if __name__ == "__main__":
    main()
