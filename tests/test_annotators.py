"""Labeling time, several annotators, their consensus and agreement (issue 27), on hand-written records."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import cohen_kappa_score

from bpsrun.errors import BpsrunError
from bpsrun.label.agreement import agreement_metrics
from bpsrun.label.base import LabelContext
from bpsrun.label.consensus import majority
from bpsrun.label.jsonmin import read_labels, read_records
from bpsrun.label.oracle import Oracle
from bpsrun.label.timing import labeling_metrics
from tests.conftest import run_in_process

CLASSES = ["no_track", "track"]


def rec(file: str, label: str, annotator: str, lead_time: float | None, k: int = 1) -> dict:
    return {"image": f"/data/local-files/?d={file}", "file_name": file, "id": k, "choice": label,
            "annotator": annotator, "annotation_id": k, "lead_time": lead_time}  # fmt: skip


# two annotators on five images, one more image by ann only; one time unknown, one over the 600 s cap
RECORDS = [
    rec("a.png", "track", "ann", 10.0),
    rec("a.png", "track", "bob", 20.0),
    rec("b.png", "track", "ann", 30.0),
    rec("b.png", "no_track", "bob", None),
    rec("c.png", "no_track", "ann", 900.0),
    rec("c.png", "no_track", "bob", 40.0),
    rec("d.png", "no_track", "ann", 5.0),
    rec("d.png", "track", "bob", 15.0),
    rec("e.png", "track", "ann", 25.0),
    rec("e.png", "track", "bob", 35.0),
    rec("f.png", "no_track", "ann", 50.0),
]


def test_labeling_metrics_exact():
    m = labeling_metrics(RECORDS, cap=600)
    known = [10, 20, 30, 600, 40, 5, 15, 25, 35, 50]
    assert m == {
        "labeling/annotations": 11.0,
        "labeling/time_unknown": 1.0,
        "labeling/time_capped": 1.0,
        "labeling/seconds": float(sum(known)),
        "labeling/seconds_per_label": float(np.median(known)),
    }


def test_all_times_unknown_gives_no_seconds():
    m = labeling_metrics([rec("a.png", "track", "oracle", None)], cap=600)
    assert m == {"labeling/annotations": 1.0, "labeling/time_unknown": 1.0, "labeling/time_capped": 0.0}


def test_agreement_metrics_exact():
    consensus = majority(RECORDS, CLASSES, seed=0, probs_of=lambda files: np.array([[0.9, 0.1]] * len(files)))
    # b and d are 1-1 ties: the model (no_track 0.9) decides
    assert consensus == {"a.png": "track", "b.png": "no_track", "c.png": "no_track", "d.png": "no_track",
                         "e.png": "track", "f.png": "no_track"}  # fmt: skip
    m = agreement_metrics(RECORDS, consensus, CLASSES, round_=1)
    shared = ["a.png", "b.png", "c.png", "d.png", "e.png"]
    by = {(r["file_name"], r["annotator"]): r["choice"] for r in RECORDS}
    expected = cohen_kappa_score([by[f, "ann"] for f in shared], [by[f, "bob"] for f in shared])
    assert m["agreement/images"] == 5.0
    assert m["agreement/kappa"] == pytest.approx(expected, abs=1e-6)
    assert m["agreement/ann"] == pytest.approx(4 / 5)  # all but b, where the model sided with bob
    assert m["agreement/bob"] == pytest.approx(4 / 5)  # all but d


def test_low_kappa_warns_naming_the_round(caplog):
    disagree = [rec(f, lab, a, 1.0) for f, (x, y) in {"a": ("track", "no_track"), "b": ("no_track", "track")}.items()
                for a, lab in (("ann", x), ("bob", y))]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="bpsrun"):
        m = agreement_metrics(disagree, majority(disagree, CLASSES, seed=0), CLASSES, round_=3)
    assert m["agreement/kappa"] < 0.4
    assert "round 3: annotators agree little" in caplog.text


def test_fleiss_for_three_annotators():
    three = [rec("a.png", "track", n, 1.0) for n in ("x", "y", "z")] + [
        rec("b.png", "no_track", n, 1.0) for n in ("x", "y", "z")
    ]
    m = agreement_metrics(three, majority(three, CLASSES, seed=0), CLASSES, round_=1)
    assert m["agreement/kappa"] == pytest.approx(1.0, abs=1e-4)  # torchmetrics adds an epsilon
    assert m["agreement/x"] == 1.0


def test_majority_ties_seeded_and_newest_vote_wins():
    tie = [rec(f"{i}.png", "track", "ann", None) for i in range(20)] + [
        rec(f"{i}.png", "no_track", "bob", None) for i in range(20)
    ]
    first, again = majority(tie, CLASSES, seed=1), majority(tie, CLASSES, seed=1)
    assert first == again
    assert set(first.values()) == set(CLASSES)  # a draw, not always the first class
    # one annotator relabeling an image is a correction, not a second vote
    corrected = [rec("a.png", "track", "ann", None), rec("a.png", "no_track", "ann", None)]
    assert majority(corrected, CLASSES, seed=0) == {"a.png": "no_track"}
    assert majority([*corrected, rec("a.png", "track", "bob", None), rec("a.png", "track", "cy", None)],
                    CLASSES, seed=0) == {"a.png": "track"}  # fmt: skip


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "12s", True])
def test_bad_lead_time_is_refused_naming_file_and_record(tmp_path: Path, bad):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps([rec("a.png", "track", "ann", 1.0), rec("b.png", "track", "ann", bad, k=2)]))
    with pytest.raises(BpsrunError, match=r"labels.json: record 1 \('b.png'\) has lead_time"):
        read_labels(path, CLASSES)
    assert json.loads(path.read_text())[1]["file_name"] == "b.png"  # the file is left as it was


def test_records_without_lead_time_read_as_before(tmp_path: Path):
    path = tmp_path / "labels.json"
    old = [{k: v for k, v in rec("a.png", "track", "oracle", None).items() if k != "lead_time"}]
    path.write_text(json.dumps(old))
    assert read_records(path, CLASSES) == old
    assert read_labels(path, CLASSES) == {"a.png": "track"}


def oracle(tmp_path: Path, **keys) -> Oracle:
    truth = tmp_path / "truth.csv"
    truth.write_text("filename,label\n" + "".join(f"{i}.png,{CLASSES[i % 2]}\n" for i in range(50)))
    context = LabelContext("c", CLASSES, truth, None, lambda f: Path(f), lambda r, f: None, False)
    return Oracle(context, **keys)


def test_oracle_without_time_model_is_unchanged(tmp_path: Path):
    records = oracle(tmp_path).label(1, ["0.png", "1.png"], [])
    assert all("lead_time" not in r for r in records)
    assert [r["annotator"] for r in records] == ["oracle", "oracle"]


def test_oracle_time_model_is_seeded(tmp_path: Path):
    files = [f"{i}.png" for i in range(50)]
    times = [r["lead_time"] for r in oracle(tmp_path, median_seconds=20, seed=3).label(1, files, [])]
    assert times == [r["lead_time"] for r in oracle(tmp_path, median_seconds=20, seed=3).label(1, files, [])]
    assert times != [r["lead_time"] for r in oracle(tmp_path, median_seconds=20, seed=4).label(1, files, [])]
    assert 10 < float(np.median(times)) < 40 and min(times) > 0


def test_campaign_logs_labeling_time(tmp_path: Path, shared_data: Path):
    """A campaign with the oracle's time model: round runs get labeling/*, the parent a curve by seconds."""
    printed = run_in_process("round=2", "labeling.median_seconds=20", "trainer.threads=1", outputs=tmp_path,
                             data=shared_data)  # fmt: skip
    assert "label min" in printed
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("bpsrun-synthetic").experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    rounds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert all(r.data.metrics["labeling/time_unknown"] == 0 and r.data.metrics["labeling/seconds"] > 0 for r in rounds)
    curve = client.get_metric_history(parent.info.run_id, "val/accuracy_by_labeling_seconds")
    total = sum(r.data.metrics["labeling/seconds"] for r in rounds)
    assert len(curve) == 2 and max(p.step for p in curve) == int(total)
