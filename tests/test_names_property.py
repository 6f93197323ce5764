"""File names are user data: any name meta.csv may hold (bpsrun.data.manifest.name_problem) goes through prepare
and a round unchanged, once, and nothing is written outside paths.outputs.

Valid names are plain file names (no folders: bpsrun refuses `sub/x.tif` up front) with spaces, unicode, quotes,
`#`, `%`, `?`, `&`, `+`, commas and repeated dots, whose stems differ (also in case: one `<stem>.json` per image).
"""

import csv
import json
import tempfile
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpsrun.data.manifest import SplitSpec, name_problem, read_manifest, stem_key
from bpsrun.data.prepare import prepare
from bpsrun.data.sources import DatasetFiles
from bpsrun.label.exports import image_name
from bpsrun.label.labelstudio import render_name
from tests.conftest import run_in_process

CLASSES = ["track", "no track"]
PUNCTUATION = " '\"#%?&+,;=@!$()[]{}~^`-_.:*<>|"

stem_chars = st.one_of(
    st.sampled_from("abcXYZ019" + PUNCTUATION),
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters="/\\"),
)
file_names = (
    st.tuples(st.text(stem_chars, min_size=1, max_size=24), st.sampled_from([".tif", ".tiff", ".TIF"]))
    .map("".join)
    .filter(lambda n: n == n.strip() and n.lower() != "nan" and name_problem(n) is None)
)
name_lists = st.lists(file_names, min_size=3, max_size=8, unique_by=stem_key)


def write_dataset(root: Path, names: list[str]) -> DatasetFiles:
    images = root / "dataset"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in names:
        tifffile.imwrite(images / name, rng.integers(100, 4000, (8, 8), dtype=np.uint16))
    with open(images / "meta.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "note"])
        writer.writerows([n, f"note {n}"] for n in names)  # names in a metadata column too
    with open(root / "truth.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label"])
        writer.writerows([n, CLASSES[k % 2]] for k, n in enumerate(names))
    return DatasetFiles(images, images / "meta.csv", root / "truth.csv")


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def lightly_records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json")) if p.name != "schema.json"]


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=name_lists)
def test_any_valid_name_goes_through_prepare_once_and_stays_inside_outputs(names):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = write_dataset(root, names)
        before = tree(root)
        campaign = root / "out" / "c"
        truth = dict(zip(names, (CLASSES[k % 2] for k in range(len(names)))))
        rows = prepare(files, SplitSpec(val_size=0.2), campaign / "manifest.csv", campaign / "metadata", truth)

        after = tree(root)
        outside = {k: v for k, v in after.items() if not k.startswith("out/")}
        assert outside == before  # the dataset and everything around outputs untouched
        assert Counter(r["file"] for r in rows) == Counter(names)
        assert [r["file"] for r in read_manifest(campaign / "manifest.csv")] == names  # round trip, in order
        assert all(Path(r["path"]) == files.image_dir / r["file"] and Path(r["path"]).is_file() for r in rows)
        assert [r["note"] for r in rows] == [f"note {n}" for n in names]
        train = [r["file"] for r in rows if r["split"] == "train"]
        records = lightly_records(campaign / "metadata")
        assert Counter(rec["file_name"] for rec in records) == Counter(train)  # each pool image exactly once
        for path in (campaign / "metadata").rglob("*.json"):
            assert path.parent == campaign / "metadata"  # no name made a subfolder
        # the other places names travel: selected.txt lines, Label Studio render URLs
        assert "".join(f"{n}\n" for n in names).splitlines() == names
        for n in names:
            url = f"/data/local-files/?d={quote(f'c/round_1/labelstudio/images/{render_name(n)}', safe='')}"
            assert image_name(url) == render_name(n)


NASTY = [
    "cell 1 (copy).tif",
    "naïve ünïcode 細胞.tif",
    "quote'single.tif",
    'quote"double.tif',
    "hash#1.tif",
    "percent%20.tif",
    "question?.tif",
    "amp&amp;.tif",
    "comma,name.tif",
    "plus+sign.tif",
    "semi;colon=eq.tif",
    "dots..in..name.tif",
    "emoji 🔬.tif",
    "brackets[1]{2}.tif",
    "tilde~.tif",
    "-leading-dash.tif",
    "dollar$HOME.tif",
    "back`tick.tif",
    "star*.tif",
    "lt<gt>.tif",
    "pipe|.tif",
    "colon:.tif",
    "caret^at@excl!.tif",
    "trailing dot..tif",
    "UPPER.TIF",
    "two.ext.tiff",
]


@pytest.fixture(scope="module")
def nasty_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nasty")
    write_dataset(root, NASTY)
    return root


def test_one_round_on_nasty_names_predicts_every_pool_image_once(nasty_dataset, tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    out = root / "out"
    args = (
        "dataset=folder",
        f"dataset.path={nasty_dataset / 'dataset'}",
        f"dataset.truth_csv={nasty_dataset}/truth.csv",
    )
    before = tree(nasty_dataset)
    run_in_process(*args, "selection=random", outputs=out)
    assert tree(nasty_dataset) == before and [p.name for p in root.iterdir()] == ["out"]
    campaign = out / "folder-random-s0"
    rows = read_manifest(campaign / "manifest.csv")
    assert sorted(r["file"] for r in rows) == sorted(NASTY)
    train = [r["file"] for r in rows if r["split"] == "train"]
    predictions = campaign / "round_1" / "lightly" / ".lightly" / "predictions" / "bps-classification"
    records = lightly_records(predictions)
    assert Counter(rec["file_name"] for rec in records) == Counter(train)
    for rec in records:
        probs = rec["predictions"][0]["probabilities"]
        assert len(probs) == 2 and abs(sum(probs) - 1) < 1e-9
    picks = (campaign / "round_1" / "selected.txt").read_text().splitlines()
    assert len(picks) == 8 and set(picks) <= set(train)
    labels = json.loads((campaign / "round_1" / "labels.json").read_text())
    assert sorted(r["file_name"] for r in labels) == sorted(picks)


def test_label_studio_files_round_trip_nasty_names(nasty_dataset, tmp_path):
    """Renders named `<name>.png`, tasks pointing at them, and an export of those tasks matched back to the picks."""
    out = tmp_path / "out"
    args = (
        "dataset=folder",
        f"dataset.path={nasty_dataset / 'dataset'}",
        f"dataset.truth_csv={nasty_dataset}/truth.csv",
        "selection=random",
        "labeling=labelstudio",
        f"labeling.document_root={tmp_path}",
        "trainer.max_epochs=1",
    )
    from bpsrun.errors import AwaitingLabels

    with pytest.raises(AwaitingLabels):
        run_in_process(*args, outputs=out)
    folder = out / "folder-random-s0" / "round_1" / "labelstudio"
    picks = (folder.parent / "selected.txt").read_text().splitlines()
    assert sorted(p.name for p in (folder / "images").iterdir()) == sorted(render_name(p) for p in picks)
    tasks = json.loads((folder / "tasks.json").read_text())
    export = []
    for k, task in enumerate(tasks):  # JSON-MIN without file_name: the file comes back from the image URL alone
        image = task["data"]["image"]
        assert image_name(image) == render_name(task["data"]["file_name"])
        export.append({"image": image, "id": k, "annotation_id": k, "choice": CLASSES[k % 2]})
    (folder / "export.json").write_text(json.dumps(export))
    run_in_process(*args, outputs=out)
    labels = json.loads((folder.parent / "labels.json").read_text())
    assert sorted(r["file_name"] for r in labels) == sorted(picks)
