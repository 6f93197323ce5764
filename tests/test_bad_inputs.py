"""The bad-input catalogue: each case runs a campaign in process (the real config, composed by Hydra) and checks
one readable message naming the file, row or key (and the fix), and the campaign folder byte-identical before and
after. That the command prints such a message as one line and exits 2 is checked once, in the slow tier."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile

from bpsrun.errors import AwaitingLabels, BpsrunError
from tests.conftest import run_command, run_in_process, snapshot

TINY_SYNTH = 60


def refusal(*overrides: str, outputs: Path, data: Path | None = None) -> str:
    """The message a campaign that must not run refuses with."""
    with pytest.raises(BpsrunError) as refused:
        run_in_process(*overrides, outputs=outputs, data=data)
    assert not isinstance(refused.value, AwaitingLabels), refused.value
    return str(refused.value)


def check_refused(message: str, *needles: str) -> None:
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


# -- a folder dataset with one broken thing ------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder_source(tmp_path_factory, shared_data) -> Path:
    """A valid dataset=folder: 60 synthetic TIFFs, meta.csv, truth.csv."""
    from bpsrun.data.synthetic import SyntheticSpec, generate

    synth = generate(SyntheticSpec(num_images=TINY_SYNTH, seed=1234), tmp_path_factory.mktemp("synth") / "s")
    root = tmp_path_factory.mktemp("folder") / "data"
    shutil.copytree(synth / "images", root)
    shutil.copy(synth / "meta.csv", root / "meta.csv")
    shutil.copy(synth / "truth.csv", root.parent / "truth.csv")
    return root


def first_image(root: Path) -> Path:
    return root / (root / "meta.csv").read_text().splitlines()[1].split(",")[0]


def write_tiff(data) -> Callable[[Path], None]:
    return lambda path: tifffile.imwrite(path, data)


def break_meta(edit: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        lines = (root / "meta.csv").read_text().splitlines()
        (root / "meta.csv").write_text("\n".join(edit(lines)) + "\n")

    return apply


FOLDER_CASES = {
    "corrupt tiff": (
        lambda p: first_image(p).write_bytes(b"II*\x00" + bytes(range(256)) * 4),
        ["not a readable image", "replace the file"],
    ),
    "truncated tiff": (
        lambda p: first_image(p).write_bytes(first_image(p).read_bytes()[:300]),
        ["not a readable image"],
    ),
    "empty tiff": (lambda p: first_image(p).write_bytes(b""), ["not a readable image"]),
    "3-channel tiff": (
        lambda p: write_tiff(np.zeros((20, 20, 3), np.uint16))(first_image(p)),
        ["expected one channel", "shape (20, 20, 3)"],
    ),
    "float tiff": (
        lambda p: write_tiff(np.zeros((20, 20), np.float32))(first_image(p)),
        ["float32", "convert to uint16"],
    ),
    "zero-size tiff": (lambda p: write_tiff(np.zeros((0, 20), np.uint16))(first_image(p)), ["no pixel data"]),
    "meta missing column": (
        break_meta(lambda ls: [",".join(r.split(",")[:2] + r.split(",")[3:]) for r in ls]),
        ["meta.csv: split.stratify_by='particle_type' is not a column", "use one of"],
    ),
    "meta duplicate file": (break_meta(lambda ls: ls + [ls[1]]), ["meta.csv:62", "duplicate filename"]),
    "meta NaN value": (
        break_meta(lambda ls: ls[:2] + [ls[2].rsplit(",", 2)[0] + ",nan," + ls[2].rsplit(",", 1)[1]] + ls[3:]),
        ["meta.csv:3", "particle_type", "nan"],
    ),
    "meta empty value": (
        break_meta(lambda ls: ls[:2] + [ls[2].rsplit(",", 2)[0] + ",," + ls[2].rsplit(",", 1)[1]] + ls[3:]),
        ["meta.csv:3", "particle_type"],
    ),
    "meta missing file": (
        break_meta(lambda ls: ls + ["P999_1-A1_001_001_proj.tif,1.0,X-ray,4"]),
        ["P999_1-A1_001_001_proj.tif", "do not exist"],
    ),
    "meta not text": (lambda p: (p / "meta.csv").write_bytes(b"\xff\xfe\x00\x01garbage"), ["meta.csv", "UTF-8"]),
    "truth unknown label": (
        lambda p: (p.parent / "truth.csv").write_text(
            (p.parent / "truth.csv").read_text().replace(",track", ",Track", 1)
        ),
        ["truth.csv:", "'Track'", "expected one of"],
    ),
}


@pytest.mark.parametrize("case", sorted(FOLDER_CASES))
def test_bad_dataset(case, folder_source, tmp_path):
    damage, needles = FOLDER_CASES[case]
    root = tmp_path / "data"
    shutil.copytree(folder_source, root)
    shutil.copy(folder_source.parent / "truth.csv", tmp_path / "truth.csv")
    damage(root)
    out = tmp_path / "out"
    args = (
        "dataset=folder",
        f"dataset.path={root}",
        f"dataset.truth_csv={tmp_path / 'truth.csv'}",
        "split.stratify_by=particle_type",
    )
    check_refused(refusal(*args, outputs=out), *needles)
    assert snapshot(out / "folder-active-s0") == {}  # a fresh campaign that cannot start leaves nothing


# -- an existing campaign, and a bad next step -------------------------------------------------------------------


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, shared_data) -> Path:
    """A campaign with round 1 done (oracle), and one awaiting Label Studio labels."""
    out = tmp_path_factory.mktemp("campaigns")
    run_in_process("round=1", outputs=out, data=shared_data)
    with pytest.raises(AwaitingLabels):
        run_in_process("round=1", "labeling=labelstudio", "campaign=ls", outputs=out, data=shared_data)
    return out


def export(records: Callable[[list[dict]], list]) -> Callable[[Path], None]:
    """Write an export built from the round's tasks into the awaiting campaign."""

    def apply(out: Path) -> None:
        folder = out / "ls" / "round_1" / "labelstudio"
        tasks = [t["data"] for t in json.loads((folder / "tasks.json").read_text())]
        (folder / "export.json").write_text(json.dumps(records(tasks)))

    return apply


def labeled(tasks, **change):
    return [{**t, "id": k, "annotation_id": k, "choice": "track", **change} for k, t in enumerate(tasks)]


def edit_picks(edit: Callable[[list[str], Path], list[str]]) -> Callable[[Path], None]:
    """Hand-edit round 1's selected.txt of the finished campaign."""

    def apply(out: Path) -> None:
        path = out / "synthetic-active-s0" / "round_1" / "selected.txt"
        path.write_text("".join(f"{f}\n" for f in edit(path.read_text().splitlines(), out)))

    return apply


def a_validation_image(out: Path) -> str:
    rows = (out / "synthetic-active-s0" / "manifest.csv").read_text().splitlines()[1:]
    return next(r.split(",")[0] for r in rows if r.split(",")[2] == "val")


LS = ("labeling=labelstudio", "campaign=ls", "round=1")
CAMPAIGN_CASES = {
    "selected emptied": (("round=2",), edit_picks(lambda picks, out: []), ["selected.txt: it is empty", "delete"]),
    "selected duplicate": (
        ("round=2",),
        edit_picks(lambda picks, out: picks[:-1] + picks[:1]),
        ["selected.txt: it lists an image twice"],
    ),
    "selected unknown image": (
        ("round=2",),
        edit_picks(lambda picks, out: picks[:-1] + ["nope.tif"]),
        ["selected.txt: 'nope.tif' is not a training-pool image"],
    ),
    "selected validation image": (
        ("round=2",),
        edit_picks(lambda picks, out: picks[:-1] + [a_validation_image(out)]),
        ["is not a training-pool image", "validation images are never picked"],
    ),
    "selected over budget": (
        ("round=1",),
        lambda out: (out / "synthetic-active-s0/round_1/selected.txt").write_text(
            "".join(
                f"{r.split(',')[0]}\n"
                for r in (out / "synthetic-active-s0/manifest.csv").read_text().splitlines()[1:]
                if r.split(",")[2] == "train"
            )
        ),  # fmt: skip
        ["more than the round's n_samples=8"],
    ),
    "labels edited after training": (
        ("round=2",),
        lambda out: (out / "synthetic-active-s0/round_1/labels.json").write_text(
            (out / "synthetic-active-s0/round_1/labels.json")
            .read_text()
            .replace('"no track"', '"TMP"')
            .replace('"track"', '"no track"')
            .replace('"TMP"', '"track"')
        ),  # fmt: skip
        ["round_1/metrics.json: round 1's model was trained on other labels", "delete"],
    ),
    "labels of an image not picked": (
        ("round=2",),
        lambda out: (out / "synthetic-active-s0/round_1/labels.json").write_text(
            json.dumps(
                json.loads((out / "synthetic-active-s0/round_1/labels.json").read_text())
                + [{"file_name": "nope.tif", "choice": "track"}]
            )
        ),  # fmt: skip
        ["round_1/labels.json: labels ['nope.tif'] of images not picked in round 1"],
    ),
    "metrics damaged": (
        ("round=2",),
        lambda out: (out / "synthetic-active-s0/round_1/metrics.json").write_text('{"round": 1, "n_lab'),
        ["round_1/metrics.json: the campaign's state file is damaged", "delete it"],
    ),
    "selection config damaged": (
        ("round=1",),
        lambda out: (out / "synthetic-active-s0/round_1/selection.json").write_bytes(b"\xff\x00"),
        ["round_1/selection.json: the campaign's state file is damaged"],
    ),
    "export malformed": (
        LS,
        lambda out: (out / "ls/round_1/labelstudio/export.json").write_text('[{"image": '),
        ["export.json", "malformed JSON", "export again"],
    ),
    "export not a list": (LS, export(lambda tasks: {"image": "x"}), ["export.json", "expected a JSON list"]),
    "export unknown label": (
        LS,
        export(lambda tasks: labeled(tasks, choice="tracks")),
        ["export.json: record 0", "'tracks'", "use one of"],
    ),
    "export unknown file": (
        LS,
        export(lambda tasks: labeled(tasks, file_name="P0_0-A0_000_000_proj.tif")),
        ["record 0", "was not picked in this round"],
    ),
    "export multi-choice": (
        LS,
        export(lambda tasks: labeled(tasks, choice={"choices": ["track", "no track"]})),
        ["record 0", "several choices"],
    ),
    "export repeated task": (
        LS,
        export(
            lambda tasks: labeled(tasks) + [{**labeled(tasks)[0], "id": 99, "annotation_id": 99, "choice": "no track"}]
        ),
        ["export.json: record", "labeled in two tasks", "import each image once"],
    ),
    "export other project": (
        LS,
        export(lambda tasks: labeled(tasks, campaign="other")),
        ["record 0 belongs to campaign 'other'"],
    ),
    "selection unknown key": (
        ("round=2", "+selection.later_rounds.strategies.0.strategy.strenght=2"),
        None,
        ["strenght", "extra fields not permitted"],
    ),
    "selection negative budget": (
        ("round=2", "+selection.later_rounds.n_samples=-3"),
        None,
        ["n_samples", "greater than or equal to"],
    ),
    "selection budget above pool": (
        ("round=2", "+selection.later_rounds.n_samples=10000"),
        None,
        ["10000", "unlabeled training images remain", "lower selection.n_samples"],
    ),
    "selection proportion above 1": (
        ("round=2", "+selection.later_rounds.proportion_samples=1.5"),
        None,
        ["proportion_samples", "less than or equal to 1.0"],
    ),
    "selection unknown strategy": (
        ("round=2", "selection.later_rounds.strategies.0.strategy.type=MAGIC"),
        None,
        ["strategies[0].strategy.type='MAGIC'", "use one of"],
    ),
    "scores before predictions": (
        ("round=1", "campaign=scores-first", "selection.first_round=${selection.later_rounds}"),
        None,
        ["need predictions for task", "round 1 has", "no model yet"],
    ),
    "round zero": (("round=0",), None, ["round=0", "rounds count from 1"]),
    "negative round": (("round=-2",), None, ["round=-2", "rounds count from 1"]),
    "changed finished selection": (
        ("round=1", "selection.n_samples=9"),
        None,
        ["round 1", "finished", "campaign=<new name>"],
    ),
    "unknown labeler": (
        ("round=2", "labeling._target_=bpsrun.label.crowd.Crowd"),
        None,
        ["labeling: cannot build bpsrun.label.crowd.Crowd", "conf/labeling/"],
    ),
}


@pytest.mark.parametrize("case", sorted(CAMPAIGN_CASES))
def test_bad_step_on_an_existing_campaign(case, campaign, shared_data, tmp_path):
    args, damage, needles = CAMPAIGN_CASES[case]
    out = tmp_path / "out"
    shutil.copytree(campaign, out)
    if damage:
        damage(out)
    before = {name: snapshot(out / name) for name in ("synthetic-active-s0", "ls")}
    check_refused(refusal(*args, outputs=out, data=shared_data), *needles)
    assert {name: snapshot(out / name) for name in before} == before
    assert not (out / "scores-first" / "manifest.csv").exists()


def test_full_supervision_with_an_incomplete_truth_file_is_refused_before_any_write(folder_source, tmp_path):
    truth = tmp_path / "truth.csv"
    lines = (folder_source.parent / "truth.csv").read_text().splitlines()
    truth.write_text("\n".join(lines[:5] + lines[6:]) + "\n")  # one image without a label
    out = tmp_path / "out"
    args = ("dataset=folder", f"dataset.path={folder_source}", f"dataset.truth_csv={truth}", "reference.enabled=true")
    check_refused(
        refusal(*args, outputs=out),
        f"{truth} has no label for 1 images",
        lines[5].split(",")[0],
        "reference.enabled=false",
    )
    assert snapshot(out / "folder-active-s0") == {}


def test_a_truth_file_without_the_validation_images_is_refused_before_any_write(folder_source, tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("\n".join((folder_source.parent / "truth.csv").read_text().splitlines()[:3]) + "\n")
    out = tmp_path / "out"
    args = ("dataset=folder", f"dataset.path={folder_source}", f"dataset.truth_csv={truth}", "labeling=labelstudio")
    check_refused(refusal(*args, outputs=out), f"{truth}: no label for", "validation images", "add their rows")
    assert snapshot(out / "folder-active-s0") == {}


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, needles",
    [
        (("round=0",), ["bpsrun: error: round=0", "rounds count from 1"]),
        (("trainer.lr_schedule=constant",), ["bpsrun: error:", "use trainer/lr_schedule=constant"]),
    ],
)
def test_the_command_prints_one_error_line_and_exits_2(args, needles, tmp_path):
    proc = run_command(*args, outputs=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("bpsrun: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    check_refused(errors[0], *needles)
    assert not (tmp_path / "synthetic-active-s0").exists()


@pytest.mark.slow
def test_a_config_group_typo_gets_hydras_message(tmp_path):
    proc = run_command("selection=actve", outputs=tmp_path, check=False)
    assert proc.returncode != 0
    assert "Could not find 'selection/actve'" in proc.stderr and "Available options" in proc.stderr
