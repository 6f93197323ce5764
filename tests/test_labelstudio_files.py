"""labeling=labelstudio in file mode, and the parsing of Label Studio's exports (JSON-MIN and full JSON)."""

import json
from pathlib import Path

import pytest
import requests

from bpsrun.errors import BpsrunError
from bpsrun.label.exports import flatten, one_vote_each, parse
from bpsrun.label.studio_api import error_text, shorten
from tests.conftest import run_command, snapshot

CLASSES = ["track", "no track"]
PICKS = ["P1_1-A1_001_001_proj.tif", "P1_1-A1_001_002_proj.tif", "P2_2-B3_004_001_proj.tif"]


def labels_of(data, picks=PICKS, campaign="c"):
    annotations = parse(flatten(data, "export.json"), picks, CLASSES, campaign)
    return {a.file: a.label for a in one_vote_each(annotations)}


def test_json_min_newest_annotation_wins_and_urls_are_unquoted():
    data = [
        # the tutorial's shape: no file_name, a url-quoted local-files path to the render
        {"image": "/data/local-files/?d=c%2Fround_1%2Flabelstudio%2Fimages%2FP1_1-A1_001_001_proj.tif.png",
         "id": 1, "choice": "track", "annotation_id": 1, "updated_at": "2026-01-01T10:00:00Z"},
        {"image": "/data/local-files/?d=c%2Fround_1%2Flabelstudio%2Fimages%2FP1_1-A1_001_001_proj.tif.png",
         "id": 1, "choice": "no track", "annotation_id": 7, "updated_at": "2026-01-01T11:00:00Z"},
        {"image": "/data/local-files/?d=x.png", "file_name": "P1_1-A1_001_002_proj.tif", "id": 2, "choice": "track",
         "annotation_id": 3, "updated_at": "2026-01-01T09:00:00Z"},
        {"image": "/data/local-files/?d=samples%2FP2_2-B3_004_001_proj.png", "id": 3},  # unlabeled task
    ]  # fmt: skip
    assert labels_of(data) == {"P1_1-A1_001_001_proj.tif": "no track", "P1_1-A1_001_002_proj.tif": "track"}


def test_full_json_skips_cancelled_annotations():
    def task(tid, file, *annotations):
        return {
            "id": tid,
            "data": {"image": "/x", "file_name": file, "campaign": "c"},
            "annotations": list(annotations),
        }

    def annotation(aid, label, when, cancelled=False):
        result = [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]
        return {"id": aid, "result": [] if cancelled else result, "was_cancelled": cancelled, "updated_at": when}

    data = [
        task(1, PICKS[0], annotation(1, "track", "2026-01-01"), annotation(2, "no track", "2026-01-02", True)),
        task(2, PICKS[1], annotation(3, "no track", "2026-01-01")),
        task(3, PICKS[2], annotation(4, "track", "2026-01-03", True)),
    ]
    # the later annotation of task 1 was skipped, so the earlier one stands; task 3 has no label at all
    assert labels_of(data) == {PICKS[0]: "track", PICKS[1]: "no track"}


@pytest.mark.parametrize(
    "record, message",
    [
        ({"file_name": PICKS[0], "choice": {"choices": ["track", "no track"]}}, r"record 0: several choices"),
        ({"file_name": PICKS[0], "choice": "Track"}, r"record 0: label 'Track' is not in the labeling config"),
        (
            {"file_name": "P9_9-H9_009_009_proj.tif", "choice": "track"},
            r"record 0: 'P9_9-H9_009_009_proj.tif' was not picked",
        ),
        ({"file_name": PICKS[0], "choice": "track", "campaign": "other"}, r"record 0 belongs to campaign 'other'"),
        # full-JSON tasks that are not Label Studio's: one line naming the record, no traceback
        ({"id": 1, "annotations": [{"result": [{"from_name": "choice"}]}]}, r"record 0: not a Label Studio task"),
        ({"id": 1, "annotations": "yes"}, r"record 0: not a Label Studio task"),
        ({"id": 1, "annotations": [None]}, r"record 0: not a Label Studio task"),
    ],
)
def test_bad_records_are_named(record, message):
    with pytest.raises(BpsrunError, match=message):
        labels_of([record])


@pytest.mark.slow
def test_file_mode_round_trip(tmp_path, shared_data):
    out = tmp_path / "out"
    args = ("labeling=labelstudio", "round=1")
    first = run_command(*args, outputs=out, data=shared_data, check=False)
    assert first.returncode == 3, first.stderr[-2000:]
    assert "bpsrun: awaiting labels: round 1: 0 of 8 images labeled (no export yet)" in first.stderr
    root = out / "synthetic-active-s0"
    folder = root / "round_1" / "labelstudio"
    picks = (root / "round_1" / "selected.txt").read_text().splitlines()
    assert not (root / "round_1" / "labels.json").exists()
    assert "Import " + str(folder.resolve() / "tasks.json") in first.stderr  # the next steps are printed
    tasks = json.loads((folder / "tasks.json").read_text())
    assert [t["data"]["file_name"] for t in tasks] == picks
    pngs = sorted(p.name for p in (folder / "images").iterdir())
    assert pngs == sorted(f"{f}.png" for f in picks)
    assert all((folder / "images" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in pngs)
    assert tasks[0]["data"]["image"].startswith("/data/local-files/?d=synthetic-active-s0%2Fround_1%2Flabelstudio")
    assert (folder / "label_config.xml").read_text().strip() == (
        '<View><Image name="image" value="$image"/><Choices name="choice" toName="image">'
        '<Choice value="track"/><Choice value="no track"/></Choices></View>'
    )

    # a rerun without an export still waits and changes nothing
    before = (folder / "tasks.json").read_bytes()
    assert run_command(*args, outputs=out, data=shared_data, check=False).returncode == 3
    assert (folder / "tasks.json").read_bytes() == before

    # the export, in Label Studio's exact text: escaped slashes, url-quoted paths, a relabel, a skipped task
    wanted = {f: CLASSES[k % 2] for k, f in enumerate(picks)}
    records = []
    for k, t in enumerate(tasks):
        rec = {"image": t["data"]["image"], "id": k + 1, "choice": wanted[picks[k]], "annotator": 1,
               "annotation_id": 100 + k, "created_at": "2026-11-24T10:00:00Z", "updated_at": "2026-11-24T10:00:00Z",
               "lead_time": 3.5}  # fmt: skip
        if k % 3:
            rec["file_name"] = t["data"]["file_name"]
        records.append(rec)
    first_try = {**records[0], "choice": CLASSES[1], "annotation_id": 99, "updated_at": "2026-11-24T09:00:00Z"}
    records.insert(0, first_try)  # an older annotation of the same task loses
    text = json.dumps(records, indent=2).replace("/", "\\/")
    (folder / "annotation-1.json").write_text(text)
    done = run_command(*args, outputs=out, data=shared_data)
    assert done.returncode == 0
    labels = json.loads((root / "round_1" / "labels.json").read_text())
    assert {r["file_name"]: r["choice"] for r in labels} == wanted
    assert (root / "round_1" / "metrics.json").exists()


def awaiting(out: Path, args: tuple[str, ...], data: Path, campaign: str) -> tuple[Path, list[dict]]:
    """Run round 1 up to "awaiting labels"; its labelstudio folder and tasks."""
    assert run_command(*args, outputs=out, data=data, check=False).returncode == 3
    folder = out / campaign / "round_1" / "labelstudio"
    return folder, json.loads((folder / "tasks.json").read_text())


@pytest.mark.slow
def test_file_mode_partial_export_waits_or_proceeds(tmp_path, shared_data):
    out = tmp_path / "out"
    args = ("labeling=labelstudio", "round=1", "campaign=partial")
    folder, tasks = awaiting(out, args, shared_data, "partial")
    half = [{**t["data"], "id": k, "choice": "track"} for k, t in enumerate(tasks[:3])]
    (folder / "export.json").write_text(json.dumps(half))
    waiting = run_command(*args, outputs=out, data=shared_data, check=False)
    assert waiting.returncode == 3 and "3 of 8 images labeled (export.json)" in waiting.stderr
    run_command(*args, "labeling.partial=proceed", outputs=out, data=shared_data)
    labels = json.loads((out / "partial" / "round_1" / "labels.json").read_text())
    assert sorted(r["file_name"] for r in labels) == sorted(t["data"]["file_name"] for t in tasks[:3])


@pytest.mark.slow
def test_export_from_another_campaign_is_refused_and_state_kept(tmp_path, shared_data):
    out = tmp_path / "out"
    args = ("labeling=labelstudio", "round=1", "campaign=mine")
    folder, tasks = awaiting(out, args, shared_data, "mine")
    foreign = [{**t["data"], "campaign": "theirs", "id": k, "choice": "track"} for k, t in enumerate(tasks)]
    (folder / "export.json").write_text(json.dumps(foreign))
    before = snapshot(out / "mine")
    proc = run_command(*args, outputs=out, data=shared_data, check=False)
    assert proc.returncode == 2
    assert f"{folder / 'export.json'}: record 0 belongs to campaign 'theirs', not 'mine'" in proc.stderr
    assert snapshot(out / "mine") == before


def annotations_of(data, picks=PICKS):
    return sorted(
        (a.file, a.annotator, a.label, a.lead_time, a.annotation_id)
        for a in one_vote_each(parse(flatten(data, "export.json"), picks, CLASSES, "c"))
    )


def test_json_min_of_two_annotators_keeps_every_vote_and_its_time():
    data = [
        {"file_name": PICKS[0], "id": 1, "choice": "track", "annotator": 1, "annotation_id": 1,
         "updated_at": "2026-01-01T10:00:00Z", "lead_time": 8.5},
        {"file_name": PICKS[0], "id": 1, "choice": "no track", "annotator": 2, "annotation_id": 2,
         "updated_at": "2026-01-01T10:01:00Z", "lead_time": 3},
        # annotator 1 again on the same image, later: one vote, the newest
        {"file_name": PICKS[0], "id": 1, "choice": "no track", "annotator": 1, "annotation_id": 5,
         "updated_at": "2026-01-01T11:00:00Z", "lead_time": 20.25},
        {"file_name": PICKS[1], "id": 2, "choice": "track", "annotation_id": 3},  # no annotator, no time
    ]  # fmt: skip
    assert annotations_of(data) == [
        (PICKS[0], "1", "no track", 20.25, 5),
        (PICKS[0], "2", "no track", 3.0, 2),
        (PICKS[1], "unknown", "track", None, 3),
    ]


def test_full_json_expanded_completed_by_and_lead_time():
    def annotation(aid, label, who, **extra):
        result = [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]
        return {"id": aid, "result": result, "completed_by": who, "updated_at": f"2026-01-0{aid}", **extra}

    task = {"id": 7, "data": {"image": "/x", "file_name": PICKS[0]}, "annotations": [
        annotation(1, "track", {"id": 1, "email": "a@lab.org"}, lead_time=4.5),
        annotation(2, "no track", {"id": 2}, lead_time=0.75),
        annotation(3, "track", 3),
    ]}  # fmt: skip
    assert annotations_of([task]) == [
        (PICKS[0], "2", "no track", 0.75, 2),
        (PICKS[0], "3", "track", None, 3),
        (PICKS[0], "a@lab.org", "track", 4.5, 1),
    ]


@pytest.mark.parametrize("value", [-1, float("nan"), "abc", True])
def test_a_bad_lead_time_is_refused_naming_the_record(value):
    data = [{"file_name": PICKS[1], "choice": "track"}, {"file_name": PICKS[0], "choice": "track", "lead_time": value}]
    with pytest.raises(BpsrunError, match=r"^export.json: record 1: lead_time .* is not a number of seconds >= 0"):
        annotations_of(data)


def response(status: int, body: bytes, content_type: str) -> requests.Response:
    r = requests.Response()
    r.status_code, r._content, r.headers["Content-Type"] = status, body, content_type
    return r


def test_label_studio_error_bodies_are_shortened_between_words():
    path = "/data/" + "very-long-folder-name/" * 8 + "images"
    long = f'Absolute local path "{path}" must be a subdirectory of LOCAL_FILES_DOCUMENT_ROOT="/x". ' * 3
    body = {"status_code": 400, "detail": "Validation error", "validation_errors": {"non_field_errors": [long]}}
    text = error_text(response(400, json.dumps(body).encode(), "application/json"))
    whole = "Validation error; " + " ".join(long.split())
    assert text.endswith(" ...") and len(text) <= 300
    kept = text[: -len(" ...")]
    assert whole.startswith(kept) and whole[len(kept)] in " ,;:"  # cut between words
    assert f'"{path}"' in text  # the path, whole
    field = {"detail": "Validation error", "validation_errors": {"project": ["This field is required."]}}
    assert error_text(response(400, json.dumps(field).encode(), "application/json")) == (
        "Validation error; project: This field is required."
    )
    page = b"<html><head><title>Server Error (500)</title></head><body><h1>Server Error</h1></body></html>"
    assert error_text(response(500, page, "text/html")) == "Server Error (500)"
    assert shorten("lorem ipsum " * 50, 40) == "lorem ipsum lorem ipsum lorem ipsum ..."
    one_word = "x" * 500
    assert shorten(f"a {one_word} b", 40) == f"a {one_word} ..."  # a word is never cut, however long


def test_two_exports_of_one_task_newest_wins_and_an_undecidable_conflict_is_refused():
    picks = PICKS[:1]

    def export(where, choice, stamp, annotation):
        rec = {"file_name": picks[0], "id": 1, "choice": choice, "annotation_id": annotation, "updated_at": stamp}
        return flatten([rec], where)

    older = export("a.json", "track", "2026-01-01T10:00:00Z", 1)
    newer = export("b.json", "no track", "2026-01-02T10:00:00Z", 1)
    for records in (older + newer, newer + older):  # whichever export is read first
        assert [a.label for a in one_vote_each(parse(records, picks, CLASSES, "c"))] == ["no track"]
    same = export("a.json", "track", "", 1) + export("b.json", "track", "", 1)
    assert [a.label for a in one_vote_each(parse(same, picks, CLASSES, "c"))] == ["track"]  # agreeing copies: fine
    conflict = export("a.json", "track", "", 1) + export("b.json", "no track", "", 1)
    with pytest.raises(BpsrunError, match=r"b.json: record 0: .* is 'no track' here but 'track' in a.json"):
        one_vote_each(parse(conflict, picks, CLASSES, "c"))


def test_an_export_saved_before_the_package_is_rebuilt_is_kept(tmp_path):
    """tasks.json missing (deleted, or a crash before the package was complete) but the labeller's export is there:
    rebuilding the package keeps every file that bpsrun did not write."""
    from PIL import Image

    from bpsrun.label.base import LabelContext
    from bpsrun.label.labelstudio import LabelStudioLabeler
    from bpsrun.layout import Layout

    image = tmp_path / "x.png"
    Image.new("I;16", (8, 8)).save(image)
    layout = Layout(tmp_path / "campaign")
    context = LabelContext("campaign", CLASSES, None, layout, lambda f: image, lambda r, files: None, True)
    settings = dict(url=None, document_root=str(tmp_path), wait=False, poll_s=1, timeout_s=None, preannotate=False)
    labeler = LabelStudioLabeler(context, **settings, partial="wait")
    folder = layout.labelstudio(1)
    folder.mkdir(parents=True)
    (folder / "export.json").write_text('[{"file_name": "x.tif", "choice": "track"}]')
    (folder / "notes.txt").write_text("half done")
    labeler.write_package(1, ["x.tif"], [])
    assert (folder / "tasks.json").exists() and (folder / "images" / "x.tif.png").exists()
    assert (folder / "export.json").read_text() == '[{"file_name": "x.tif", "choice": "track"}]'
    assert (folder / "notes.txt").read_text() == "half done"


def labeler_for(tmp_path: Path, probs=None, **keys):
    """A file-mode labeler of campaign `campaign` under tmp_path, every image an 8x8 16-bit TIFF; `probs(r, files)`
    the previous round's model."""
    from PIL import Image

    from bpsrun.label.base import LabelContext
    from bpsrun.label.labelstudio import LabelStudioLabeler
    from bpsrun.layout import Layout

    image = tmp_path / "x.tif"
    Image.new("I;16", (8, 8)).save(image)
    layout = Layout(tmp_path / "campaign")
    context = LabelContext("campaign", CLASSES, None, layout, lambda f: image, probs or (lambda r, f: None), True)
    settings = dict(url=None, document_root=str(tmp_path), wait=False, poll_s=1, timeout_s=None, partial="wait")
    return LabelStudioLabeler(context, **{**settings, "preannotate": False, **keys}), layout


def confident(r: int, files: list[str]):
    import numpy as np

    return np.array([[0.8, 0.2]] * len(files))


def test_a_pick_of_an_earlier_round_is_a_relabel_task_without_preannotation(tmp_path):
    labeler, layout = labeler_for(tmp_path, confident, preannotate=True)
    layout.round_dir(1).mkdir(parents=True)
    layout.selected(1).write_text("\n".join(PICKS[:2]) + "\n")
    tasks = labeler.tasks(2, [PICKS[1], PICKS[2]], ["v.tif"])  # PICKS[1] again: a second annotation of it
    kinds = {t["data"]["file_name"]: t["data"]["kind"] for t in tasks}
    assert kinds == {PICKS[1]: "relabel", PICKS[2]: "training", "v.tif": "validation"}
    prompted = {t["data"]["file_name"]: t["predictions"][0]["result"][0]["value"]["choices"] for t in tasks
                if "predictions" in t}  # fmt: skip
    assert prompted == {PICKS[2]: ["track"]}  # neither the relabel nor the validation image shows a guess


def test_a_relabel_takes_only_its_own_rounds_votes(tmp_path):
    """Round 2 asks again for round 1's PICKS[1] while validation is pending (so every round's exports are read):
    round 1's vote on it stays round 1's, and two tasks of one image in two rounds are no conflict."""
    labeler, layout = labeler_for(tmp_path)
    for r, picks in ((1, PICKS[:2]), (2, PICKS[1:])):
        layout.round_dir(r).mkdir(parents=True, exist_ok=True)
        layout.selected(r).write_text("\n".join(picks) + "\n")
        labeler.write_package(r, picks, ["v.tif"])
    votes = {1: [(1, PICKS[0], "track", "1"), (2, PICKS[1], "track", "1")],
             2: [(4, PICKS[1], "no track", "2"), (5, PICKS[2], "track", "1")]}  # fmt: skip
    for r, rows in votes.items():
        records = [{"file_name": f, "id": t, "choice": c, "annotator": a, "annotation_id": t} for t, f, c, a in rows]
        (layout.labelstudio(r) / "export.json").write_text(json.dumps(records))
    tasks = json.loads((layout.labelstudio(2) / "tasks.json").read_text())
    assert [t["data"]["kind"] for t in tasks] == ["relabel", "training"]  # v.tif went with round 1
    labels = labeler.label(2, PICKS[1:], ["v.tif"])
    assert sorted((r["file_name"], r["annotator"], r["choice"]) for r in labels) == [
        (PICKS[1], "2", "no track"),
        (PICKS[2], "1", "track"),
    ]
    assert all("round_2" in r["image"] for r in labels)


@pytest.mark.parametrize("overlap", [-0.1, 1.5, "half", True])
def test_labeling_overlap_outside_0_1_is_refused(tmp_path, overlap):
    with pytest.raises(BpsrunError, match=r"^labeling.overlap=.*: use a share between 0 and 1"):
        labeler_for(tmp_path, overlap=overlap)


def test_labeling_overlap_sets_the_project_fields():
    from bpsrun.label.labelstudio import overlap_settings

    assert overlap_settings(0) == {"maximum_annotations": 1}
    assert overlap_settings(0.25) == {"maximum_annotations": 2, "overlap_cohort_percentage": 25}
    assert overlap_settings(1.0) == {"maximum_annotations": 2, "overlap_cohort_percentage": 100}
    assert overlap_settings(0.001) == {"maximum_annotations": 2, "overlap_cohort_percentage": 1}  # some, not none
