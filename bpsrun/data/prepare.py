"""The prepare stage: dataset files -> manifest.csv, the Lightly metadata folder, the cached image stack."""

from __future__ import annotations

from pathlib import Path

from bpsrun.data.images import read_image, write_stack
from bpsrun.data.lightly_meta import write_metadata
from bpsrun.data.manifest import SplitSpec, read_manifest, read_meta, split, write_manifest
from bpsrun.data.sources import DatasetFiles
from bpsrun.errors import BpsrunError
from bpsrun.faults import checkpoint
from bpsrun.files import atomic_file
from bpsrun.progress import progress


def prepare(
    files: DatasetFiles, spec: SplitSpec, manifest: Path, metadata_dir: Path, val_truth: dict[str, str] | None
) -> list[dict[str, str]]:
    """Write manifest.csv and Lightly metadata once; later calls read them back. `val_truth`, when the validation
    labels come from the truth file (split.val_labels), must cover the validation images: checked before anything
    is written."""
    if not manifest.exists():
        header, rows = read_meta(files.meta_csv)
        missing = [r["filename"] for r in rows if not (files.image_dir / r["filename"]).is_file()]
        if missing:
            raise BpsrunError(
                f"{files.meta_csv}: {len(missing)} listed images do not exist in {files.image_dir} "
                f"(first: {missing[0]}); add them or remove their rows"
            )
        check_strata(rows, spec.stratify_by, files.meta_csv)
        check_images([files.image_dir / r["filename"] for r in rows])
        splits = split(rows, spec)
        val = [r["filename"] for r, part in zip(rows, splits) if part == "val"]
        unlabeled = [f for f in val if val_truth is not None and f not in val_truth]
        if unlabeled:
            raise BpsrunError(
                f"{files.truth_csv}: no label for {len(unlabeled)} validation images (first: {unlabeled[0]}); "
                f"validation accuracy needs them all: add their rows, or set split.val_labels=labeler to have "
                f"them labeled with the first round's picks"
            )
        write_manifest(manifest, header, rows, splits, files.image_dir)
        checkpoint("prepare")
    rows = read_manifest(manifest)
    if not (metadata_dir / "schema.json").exists():
        columns = [c for c in rows[0] if c not in ("file", "path", "split")]
        write_metadata(metadata_dir, columns, [r for r in rows if r["split"] == "train"])
    return rows


def check_strata(rows: list[dict[str, str]], column: str | None, source: Path) -> None:
    """The split needs a stratum for every image: no empty or NaN values in `split.stratify_by`."""
    if not column:
        return
    if column not in rows[0]:
        raise BpsrunError(f"{source}: split.stratify_by={column!r} is not a column; use one of {list(rows[0])} or null")
    for line, row in enumerate(rows, start=2):
        if row[column].strip().lower() in ("", "nan", "na", "none", "null"):
            raise BpsrunError(
                f"{source}:{line}: {column}={row[column]!r} for {row['filename']}; split.stratify_by needs a value on "
                f"every row: fill it in, or set split.stratify_by=null"
            )


def check_images(paths: list[Path]) -> None:
    """Decode every image once before the campaign writes anything: a bad file stops a fresh start cleanly."""
    for path in progress(paths, desc="checking images", unit="img", leave=False):
        read_image(path)


def image_cache(rows: list[dict[str, str]], size: int, cache: Path) -> Path:
    """The cache file of model inputs for every manifest row (.npy), decoded once per campaign and image size
    (streamed to the file) when it does not exist yet."""
    if not cache.exists():
        with atomic_file(cache) as tmp, open(tmp, "wb") as f:
            write_stack([Path(r["path"]) for r in rows], size, f, desc=f"decoding images at {size}px")
    return cache
