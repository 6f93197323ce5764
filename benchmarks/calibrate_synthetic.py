"""How hard is the synthetic task? Validation accuracy with all training labels vs 60 random labels.

Uses the campaign's own path (manifest split, normalisation, model, trainer). Prints the figures and appends
them to benchmarks/RESULTS.md. Usage: python benchmarks/calibrate_synthetic.py [hydra overrides...]
"""

from __future__ import annotations

import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from bpsrun.data.images import load_stack
from bpsrun.data.manifest import SplitSpec, read_meta, split
from bpsrun.data.sources import synthetic
from bpsrun.label.oracle import read_truth
from bpsrun.model.train import evaluate, fit, predict_proba

REPO = Path(__file__).resolve().parents[1]
N_RANDOM, SUBSETS = 60, 5


def main(overrides: list[str]) -> None:
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    files = synthetic(cfg.dataset)
    _, rows = read_meta(files.meta_csv)
    parts = split(rows, SplitSpec(**cfg.split))
    truth = read_truth(files.truth_csv, list(cfg.task.classes))
    stack = load_stack([files.image_dir / r["filename"] for r in rows], int(cfg.model.image_size))
    y = np.array([list(cfg.task.classes).index(truth[r["filename"]]) for r in rows])
    train = np.array([i for i, p in enumerate(parts) if p == "train"])
    val = np.array([i for i, p in enumerate(parts) if p == "val"])

    def accuracy(idx: np.ndarray, seed: int) -> float:
        module, _ = fit(cfg, stack[idx], y[idx], stack[val], y[val], seed=seed, num_classes=2)
        return evaluate(predict_proba(module, stack[val], 256), y[val], 2)["val_accuracy"]

    start = time.time()
    full = accuracy(train, 0)
    rng = np.random.default_rng(0)
    few = [accuracy(rng.choice(train, N_RANDOM, replace=False), s) for s in range(SUBSETS)]
    majority = max(y[val].mean(), 1 - y[val].mean())
    lines = [
        f"## Synthetic calibration ({date.today()}, {platform.machine()}, {platform.processor() or 'cpu'})",
        "",
        f"`python benchmarks/calibrate_synthetic.py {' '.join(overrides)}`: dataset.num_images="
        f"{cfg.dataset.num_images}, model={cfg.model.name}, {len(train)} train / {len(val)} val, "
        f"{cfg.trainer.max_epochs} epochs, {time.time() - start:.0f} s.",
        "",
        "| labels | val accuracy |",
        "|---|---|",
        f"| all {len(train)} | {full:.3f} |",
        f"| {N_RANDOM} random (mean ± sd over {SUBSETS} draws) | {np.mean(few):.3f} ± {np.std(few):.3f} |",
        f"| majority class | {majority:.3f} |",
        "",
    ]
    print("\n".join(lines))
    with open(REPO / "benchmarks" / "RESULTS.md", "a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
