"""Simulated annotators, CROWDLAB consensus and ActiveLab selection (re-label or label new), issue 27."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cleanlab.multiannotator import get_active_learning_scores, get_label_quality_multiannotator

from bpsrun.errors import BpsrunError
from bpsrun.export.predictions import read_predictions
from bpsrun.label.base import LabelContext
from bpsrun.label.consensus import consensus_function, crowdlab, majority
from bpsrun.label.jsonmin import read_records
from bpsrun.label.oracle import Oracle
from bpsrun.layout import Layout
from bpsrun.selection.activelab import activelab
from tests.conftest import compose_config, run_in_process

CLASSES = ["no_track", "track"]  # the hand-written cases; the campaign uses its task's classes
N = np.nan


def test_activelab_picks_the_lowest_cleanlab_scores():
    annotations = np.array([[0, N], [1, 1], [N, N], [0, 1], [N, 0], [N, N], [N, N]])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.6, 0.4], [0.3, 0.7], [0.95, 0.05], [0.45, 0.55]])
    labeled = [0, 1, 3, 4]
    unlabeled = [2, 5, 6]
    got_labeled, got_unlabeled = get_active_learning_scores(annotations[labeled], probs[labeled], probs[unlabeled])
    scores = np.empty(7)
    scores[labeled], scores[unlabeled] = got_labeled, got_unlabeled
    # images 1 and 3 have both annotators' labels: never picked again
    eligible = [0, 2, 4, 5, 6]
    expected = sorted(eligible, key=lambda i: scores[i])[:3]
    assert activelab(probs, annotations, 3, max_annotations=None) == expected
    # with room for three annotations each, the fully labeled ones compete too
    assert activelab(probs, annotations, 3, max_annotations=3) == sorted(range(7), key=lambda i: scores[i])[:3]
    with pytest.raises(BpsrunError, match="5 images can take another annotation .* fewer than the round's 6"):
        activelab(probs, annotations, 6, max_annotations=None)


def test_crowdlab_is_cleanlabs_consensus_and_majority_without_a_model():
    records = [
        {"file_name": f, "choice": c, "annotator": a}
        for f, votes in {
            "a": ("track", "track"),
            "b": ("track", "no_track"),
            "c": ("no_track", None),
            "d": (None, "track"),
            "e": ("no_track", "no_track"),
        }.items()  # fmt: skip
        for a, c in zip(("ann", "bob"), votes, strict=True)
        if c is not None
    ]
    probs = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.9, 0.1], [0.6, 0.4]])
    matrix = pd.DataFrame([[1, 1], [1, 0], [0, N], [N, 1], [0, 0]], columns=["ann", "bob"])
    expected = get_label_quality_multiannotator(matrix, probs, verbose=False)["label_quality"]["consensus_label"]
    got = crowdlab(records, CLASSES, seed=0, probs_of=lambda files: probs)
    assert got == {f: CLASSES[int(c)] for f, c in zip("abcde", expected, strict=True)}
    assert crowdlab(records, CLASSES, seed=0, probs_of=None) == majority(records, CLASSES, seed=0)
    assert consensus_function("crowdlab") is crowdlab
    with pytest.raises(BpsrunError, match="labeling.consensus='vote' is unknown; use one of"):
        consensus_function("vote")


def oracle(tmp_path: Path, **keys) -> Oracle:
    truth = tmp_path / "truth.csv"
    truth.write_text("filename,label\n" + "".join(f"{i}.png,{CLASSES[i % 2]}\n" for i in range(200)))
    context = LabelContext("c", CLASSES, truth, Layout(tmp_path), Path, lambda r, f: None, False)
    return Oracle(context, **keys)


def test_simulated_annotators_share_the_work_and_err_at_their_rate(tmp_path: Path):
    files = [f"{i}.png" for i in range(200)]
    records = oracle(tmp_path, annotators={"ann": 0.0, "bob": 0.25}, seed=1).label(1, files, [])
    assert Counter(r["annotator"] for r in records) == {"ann": 100, "bob": 100}
    truth = {f: CLASSES[i % 2] for i, f in enumerate(files)}
    wrong = Counter(r["annotator"] for r in records if r["choice"] != truth[r["file_name"]])
    assert wrong["ann"] == 0 and 15 <= wrong["bob"] <= 35  # 25 % of 100, seeded
    assert records == oracle(tmp_path, annotators={"ann": 0.0, "bob": 0.25}, seed=1).label(1, files, [])
    everyone = oracle(tmp_path, annotators={"ann": 0.0, "bob": 1.0}, overlap=0.5).label(1, files[:10], [])
    shared = [f for f, n in Counter(r["file_name"] for r in everyone).items() if n == 2]
    assert len(everyone) == 15 and len(shared) == 5
    assert all(r["choice"] != truth[r["file_name"]] for r in everyone if r["annotator"] == "bob")  # rate 1: always


def test_a_relabel_goes_to_an_annotator_who_has_not_labeled_the_image(tmp_path: Path):
    layout = Layout(tmp_path)
    first = oracle(tmp_path, annotators={"ann": 0.0, "bob": 0.0}).label(1, ["0.png", "1.png"], [])
    layout.labels(1).parent.mkdir(parents=True)
    layout.labels(1).write_text(json.dumps(first))
    before = {r["file_name"]: r["annotator"] for r in first}
    again = oracle(tmp_path, annotators={"ann": 0.0, "bob": 0.0}).label(2, ["1.png", "0.png"], [])
    assert {r["file_name"]: r["annotator"] for r in again} == {
        f: ({"ann", "bob"} - {a}).pop() for f, a in before.items()
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("labeling.overlap=0.5", r"labeling.overlap=0.5 needs two or more labeling.annotators"),
        ("labeling.annotators={ann: 1.5}", r"labeling.annotators.ann=1.5: an error rate is a share in \[0, 1\]"),
        ("labeling.consensus=vote", r"labeling.consensus='vote' is unknown"),
    ],
)
def test_bad_annotator_settings_are_refused_before_anything_is_written(tmp_path: Path, override, message):
    with pytest.raises(BpsrunError, match=message):
        run_in_process(override, outputs=tmp_path)
    assert not list(tmp_path.rglob("round_1"))


def test_activelab_campaign_relabels_with_cleanlabs_scores(tmp_path: Path, shared_data: Path):
    """Three rounds with two simulated annotators: a later round re-labels an image labeled before, by the other
    annotator, and its picks are the lowest ActiveLab scores on the campaign's own files."""
    overrides = ("selection=activelab", "round=3", "labeling.annotators={ann: 0.1, bob: 0.3}", "trainer.threads=1",
                 "labeling.consensus=crowdlab")  # fmt: skip
    run_in_process(*overrides, outputs=tmp_path, data=shared_data)
    cfg = compose_config(*overrides, outputs=tmp_path, data=shared_data)
    root = tmp_path / cfg.campaign
    layout, classes = Layout(root), list(cfg.task.classes)
    records = {r: read_records(layout.labels(r), classes) for r in (1, 2, 3)}
    relabels = []
    for r in (2, 3):
        earlier = {(x["file_name"], x["annotator"]) for k in range(1, r) for x in records[k]}
        files_before = {f for f, _ in earlier}
        for rec in records[r]:
            if rec["file_name"] in files_before:
                assert (rec["file_name"], rec["annotator"]) not in earlier  # someone new
                relabels.append(rec["file_name"])
    assert relabels, "ActiveLab asked for no second annotation in rounds 2-3"
    # round 3's picks, recomputed from round 2's predictions and the annotations of rounds 1-2: every training
    # image is a candidate (in manifest order), labeled or not
    with open(root / "manifest.csv", newline="") as f:
        candidates = [row["file"] for row in csv.DictReader(f) if row["split"] == "train"]
    selected = layout.read_selected(3)
    annotators = sorted({x["annotator"] for k in (1, 2) for x in records[k]})
    matrix = np.full((len(candidates), len(annotators)), np.nan)
    row = {f: i for i, f in enumerate(candidates)}
    for k in (1, 2):
        for x in records[k]:
            matrix[row[x["file_name"]], annotators.index(x["annotator"])] = classes.index(x["choice"])
    probs = read_predictions(layout.predictions(2), cfg.task.name, candidates)
    labeled = ~np.isnan(matrix).all(axis=1)
    scores = np.empty(len(candidates))
    scores[labeled], scores[~labeled] = get_active_learning_scores(matrix[labeled], probs[labeled], probs[~labeled])
    open_to_another = np.isnan(matrix).any(axis=1)  # not yet labeled by both annotators
    expected = sorted(np.flatnonzero(open_to_another), key=lambda i: scores[i])[: len(selected)]
    assert selected == [candidates[i] for i in expected]
    metrics = json.loads(layout.metrics(3).read_text())
    assert metrics["n_annotations"] == sum(len(v) for v in records.values()) == 3 * 8
    assert metrics["n_labeled"] == 3 * 8 - len(set(relabels))
