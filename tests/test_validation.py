"""A campaign whose validation sample is labeled by its labeler (split.val_labels), in Label Studio's file mode:
one import holding validation and round-1 tasks, rounds that train before the validation labels are in
(split.require_val=false), and metrics computed for them once the labels arrive."""

import csv
import json
import shutil
from pathlib import Path

import mlflow
import pytest

from bpsrun.data.manifest import SplitSpec, split
from bpsrun.errors import AwaitingLabels, BpsrunError
from tests.conftest import run_in_process

CLASSES = ["track", "no track"]


@pytest.fixture(scope="module")
def no_truth(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A folder of 60 TIFFs with meta.csv and no truth file, and the truth a human labeller would know."""
    from bpsrun.data.synthetic import SyntheticSpec, generate

    synth = generate(SyntheticSpec(num_images=60, seed=1234), tmp_path_factory.mktemp("synth") / "s")
    folder = tmp_path_factory.mktemp("own") / "images"
    shutil.copytree(synth / "images", folder)
    shutil.copy(synth / "meta.csv", folder / "meta.csv")
    with open(synth / "truth.csv", newline="") as f:
        truth = {row["filename"]: row["label"] for row in csv.DictReader(f)}
    return folder, truth


def awaiting(*overrides: str, outputs: Path) -> str:
    with pytest.raises(AwaitingLabels) as waiting:
        run_in_process(*overrides, outputs=outputs)
    return str(waiting.value)


def files_of(path: Path) -> list[str]:
    return [rec["file_name"] for rec in json.loads(path.read_text())]


def export(records: list[dict], path: Path) -> None:
    """A JSON-MIN export as Label Studio writes it: the task's data plus the choice."""
    rows = [{**t["data"], "id": k + 1, "choice": label, "annotation_id": k + 1} for k, (t, label) in enumerate(records)]
    path.write_text(json.dumps(rows))


def test_val_size_is_a_fraction_or_a_count():
    rows = [{"filename": f"img{i:03d}.tif", "particle_type": "Fe" if i % 3 else "X-ray"} for i in range(90)]
    assert split(rows, SplitSpec(val_size=30, stratify_by="particle_type")).count("val") == 30
    assert split(rows, SplitSpec(val_size=0.1, stratify_by="particle_type")).count("val") == 9
    with pytest.raises(BpsrunError, match=r"split.val_size=90 images, but the dataset has 90"):
        split(rows, SplitSpec(val_size=90))


def test_the_oracle_labels_the_validation_sample_apart_from_training(tmp_path):
    out = tmp_path / "out"
    run_in_process("round=2", "split.val_labels=labeler", "split.val_size=10", outputs=out)
    root = out / "synthetic-active-s0"
    val = [r["file"] for r in csv.DictReader((root / "manifest.csv").open()) if r["split"] == "val"]
    assert len(val) == 10 and sorted(files_of(root / "validation" / "labels.json")) == sorted(val)
    for r in (1, 2):
        trained = files_of(root / f"round_{r}" / "labels.json")
        assert len(trained) == 8 and not set(trained) & set(val)  # validation labels never train
        metrics = json.loads((root / f"round_{r}" / "metrics.json").read_text())
        assert metrics["n_labeled"] == 8 * r and sum(map(sum, metrics["confusion"])) == 10


def test_file_mode_without_ground_truth(no_truth, tmp_path):
    folder, truth = no_truth
    out = tmp_path / "out"
    args = ("dataset=folder", f"dataset.path={folder}", "labeling=labelstudio", "round=1")
    root = out / "folder-active-s0"
    package = root / "round_1" / "labelstudio"

    # one import holds the validation sample and round 1's picks, marked
    message = awaiting(*args, outputs=out)
    assert "round 1: 0 of 8 images labeled; 0 of 12 validation images" in message
    assert "20 images: 8 picks and 12 validation images (task data kind=validation" in message
    tasks = json.loads((package / "tasks.json").read_text())
    picks = (root / "round_1" / "selected.txt").read_text().splitlines()
    val = [r["file"] for r in csv.DictReader((root / "manifest.csv").open()) if r["split"] == "val"]
    assert [t["data"]["file_name"] for t in tasks] == picks + val
    assert [t["data"]["kind"] for t in tasks] == ["training"] * 8 + ["validation"] * 12
    assert sorted(p.name for p in (package / "images").iterdir()) == sorted(f"{f}.png" for f in picks + val)

    # the labeller does the picks and a third of the validation images, in one export; the validation labels are
    # "track" throughout (not the hidden truth), so metrics computed on them show it
    by_file = {t["data"]["file_name"]: t for t in tasks}
    export([(by_file[f], truth[f]) for f in picks] + [(by_file[f], "track") for f in val[:4]], package / "a.json")
    message = awaiting(*args, outputs=out)
    assert "round 1: 4 of 12 validation images labeled (labeling=labelstudio)" in message
    assert "split.require_val=false" in message
    assert sorted(files_of(root / "validation" / "labels.json")) == sorted(val[:4])
    assert not set(files_of(root / "round_1" / "labels.json")) & set(val)

    # the user lets round 1 train meanwhile: no metrics, said plainly, in the table and in MLflow
    printed = run_in_process(*args, "split.require_val=false", outputs=out)
    assert "1        8        -        -  (validation labels missing)" in printed
    metrics = json.loads((root / "round_1" / "metrics.json").read_text())
    assert metrics["n_labeled"] == 8 and "val_accuracy" not in metrics
    client = mlflow.MlflowClient(f"sqlite:///{out}/mlflow.db")
    (run,) = client.search_runs(
        [client.get_experiment_by_name("bpsrun-folder").experiment_id], "tags.`bpsrun.round` = '1'"
    )
    assert run.data.tags["bpsrun.validation"] == "missing: 8 of 12 validation images unlabeled"
    assert "val/accuracy" not in run.data.metrics

    # the rest arrive in a separate export: the next run scores round 1's kept model on them and logs it
    export([(by_file[f], "track") for f in val[4:]], package / "b.json")
    run_in_process(*args, "split.require_val=false", outputs=out)
    metrics = json.loads((root / "round_1" / "metrics.json").read_text())
    assert metrics["confusion"][1] == [0, 0] and sum(metrics["confusion"][0]) == 12  # all rows: human "track"
    assert sorted(files_of(root / "validation" / "labels.json")) == sorted(val)
    (run,) = client.search_runs([run.info.experiment_id], "tags.`bpsrun.round` = '1'")
    assert run.data.metrics["val/accuracy"] == pytest.approx(metrics["val_accuracy"])
    assert run.data.tags["bpsrun.validation"].startswith("scored after the round")
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert [m.step for m in client.get_metric_history(parent.info.run_id, "val/accuracy")] == [8]


def test_a_truth_file_still_labels_validation_unless_told_otherwise(no_truth, tmp_path):
    folder, truth = no_truth
    truth_csv = tmp_path / "truth.csv"
    truth_csv.write_text("filename,label\n" + "".join(f"{f},{label}\n" for f, label in truth.items()))
    base = ("dataset=folder", f"dataset.path={folder}", f"dataset.truth_csv={truth_csv}", "labeling=labelstudio")
    message = awaiting(*base, "round=1", outputs=tmp_path / "a")  # auto: truth labels validation, as before
    assert "0 of 8 images labeled (no export yet)" in message and "validation" not in message.splitlines()[0]
    awaiting(*base, "round=1", "split.val_labels=labeler", "campaign=b", outputs=tmp_path / "a")
    kinds = [
        t["data"]["kind"] for t in json.loads((tmp_path / "a" / "b" / "round_1/labelstudio/tasks.json").read_text())
    ]
    assert kinds.count("validation") == 12
    with pytest.raises(BpsrunError, match="split.val_labels=truth needs ground truth"):
        run_in_process("dataset=folder", f"dataset.path={folder}", "split.val_labels=truth", outputs=tmp_path / "c")
