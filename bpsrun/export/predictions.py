"""Lightly's prediction format: `.lightly/predictions/tasks.json`, `<task>/schema.json`, `<task>/<stem>.json`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bpsrun.faults import checkpoint
from bpsrun.files import atomic_dir
from bpsrun.progress import progress


def write_predictions(folder: Path, task: str, classes: list[str], files: list[str], probs: np.ndarray) -> None:
    """Write the whole `folder` (…/.lightly/predictions) at once; a crash leaves the previous state."""
    with atomic_dir(folder) as tmp:
        (tmp / "tasks.json").write_text(json.dumps([task]))
        task_dir = tmp / task
        task_dir.mkdir()
        categories = [{"id": i, "name": name} for i, name in enumerate(classes)]
        (task_dir / "schema.json").write_text(json.dumps({"task_type": "classification", "categories": categories}))
        p64 = probs.astype(np.float64)
        normalized = p64 / p64.sum(axis=1, keepdims=True)
        made: set[Path] = {task_dir}
        for name, p, category in progress(
            zip(files, normalized.tolist(), normalized.argmax(axis=1).tolist()),
            total=len(files),
            desc="exporting predictions",
            unit="file",
            leave=False,
        ):
            record = {"file_name": name, "predictions": [{"category_id": category, "probabilities": p}]}
            out = task_dir / f"{Path(name).with_suffix('')}.json"
            if out.parent not in made:  # names may hold subfolders
                out.parent.mkdir(parents=True, exist_ok=True)
                made.add(out.parent)
            out.write_text(json.dumps(record))
            checkpoint("predictions")


def read_predictions(folder: Path, task: str, files: list[str]) -> np.ndarray:
    """Probabilities (len(files) x C) back from a prediction folder, in the order of `files`."""
    task_dir = folder / task
    rows = []
    for name in files:
        record = json.loads((task_dir / f"{Path(name).with_suffix('')}.json").read_text())
        rows.append(record["predictions"][0]["probabilities"])
    return np.asarray(rows, dtype=np.float64)
