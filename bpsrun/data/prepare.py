"""The prepare stage: dataset files -> manifest.csv, the Lightly metadata folder, the cached image stack."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bpsrun.data.images import load_stack
from bpsrun.data.lightly_meta import write_metadata
from bpsrun.data.manifest import SplitSpec, read_manifest, read_meta, split, write_manifest
from bpsrun.data.sources import DatasetFiles
from bpsrun.errors import BpsrunError
from bpsrun.files import cached_npy


def prepare(files: DatasetFiles, spec: SplitSpec, manifest: Path, metadata_dir: Path) -> list[dict[str, str]]:
    """Write manifest.csv and Lightly metadata once; later calls read them back."""
    if not manifest.exists():
        header, rows = read_meta(files.meta_csv)
        missing = [r["filename"] for r in rows if not (files.image_dir / r["filename"]).is_file()]
        if missing:
            raise BpsrunError(
                f"{files.meta_csv}: {len(missing)} listed images do not exist in {files.image_dir} "
                f"(first: {missing[0]}); add them or remove their rows"
            )
        splits = split(rows, spec)
        write_manifest(manifest, header, rows, splits, files.image_dir)
    rows = read_manifest(manifest)
    if not (metadata_dir / "schema.json").exists():
        columns = [c for c in rows[0] if c not in ("file", "path", "split")]
        write_metadata(metadata_dir, columns, [r for r in rows if r["split"] == "train"])
    return rows


def image_stack(rows: list[dict[str, str]], size: int, cache: Path) -> np.ndarray:
    """Model inputs for every manifest row, decoded once per campaign and image size, then memory-mapped."""
    paths = [Path(r["path"]) for r in rows]
    return cached_npy(cache, lambda: load_stack(paths, size, desc=f"decoding images at {size}px"), mmap=True)
