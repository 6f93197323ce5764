"""Lightly metadata and prediction files, and JSON-MIN label records, in their exact shapes."""

import json
from pathlib import Path

import numpy as np
import pytest

from bpsrun.data.lightly_meta import write_metadata
from bpsrun.errors import BpsrunError
from bpsrun.export.predictions import read_predictions, write_predictions
from bpsrun.label.base import LabelContext
from bpsrun.label.jsonmin import file_of, read_labels
from bpsrun.label.oracle import Oracle
from bpsrun.layout import Layout

CLASSES = ["track", "no track"]


def test_prediction_files_in_lightly_format(tmp_path):
    folder = tmp_path / ".lightly" / "predictions"
    probs = np.array([[0.8, 0.2], [0.1, 0.9]], dtype=np.float32)
    write_predictions(folder, "bps-classification", CLASSES, ["a_proj.tif", "b_proj.tif"], probs)
    assert json.loads((folder / "tasks.json").read_text()) == ["bps-classification"]
    assert json.loads((folder / "bps-classification" / "schema.json").read_text()) == {
        "task_type": "classification",
        "categories": [{"id": 0, "name": "track"}, {"id": 1, "name": "no track"}],
    }
    rec = json.loads((folder / "bps-classification" / "b_proj.json").read_text())
    assert rec["file_name"] == "b_proj.tif"
    assert rec["predictions"][0]["category_id"] == 1
    assert sum(rec["predictions"][0]["probabilities"]) == pytest.approx(1.0, abs=1e-12)
    back = read_predictions(folder, "bps-classification", ["b_proj.tif", "a_proj.tif"])
    assert back == pytest.approx(probs[::-1], abs=1e-6)
    assert not list(tmp_path.glob(".lightly/.*tmp"))


def test_lightly_metadata_folder(tmp_path):
    rows = [
        {"file": "a.tif", "dose_Gy": "0.82", "particle_type": "Fe", "hr_post_exposure": "4"},
        {"file": "b.tif", "dose_Gy": "1.0", "particle_type": "X-ray", "hr_post_exposure": "24"},
    ]
    write_metadata(tmp_path / "metadata", ["dose_Gy", "particle_type", "hr_post_exposure"], rows)
    schema = json.loads((tmp_path / "metadata" / "schema.json").read_text())
    assert schema[1] == {
        "name": "Particle Type",
        "path": "particle_type",
        "defaultValue": "nothing",
        "valueDataType": "CATEGORICAL_STRING",
    }
    assert [s["valueDataType"] for s in schema] == ["NUMERIC_FLOAT", "CATEGORICAL_STRING", "NUMERIC_INT"]
    assert json.loads((tmp_path / "metadata" / "b.json").read_text()) == {
        "file_name": "b.tif",
        "type": "image",
        "metadata": {"dose_Gy": 1.0, "particle_type": "X-ray", "hr_post_exposure": 24},
    }


def test_oracle_writes_json_min_that_reads_back(tmp_path):
    (tmp_path / "truth.csv").write_text("filename,label\na b.tif,track\nc.tif,no track\n")
    context = LabelContext("c", CLASSES, tmp_path / "truth.csv", Layout(tmp_path), Path, lambda r, files: None, True)
    records = Oracle(context).label(1, ["c.tif"], ["a b.tif"])  # a pick, and a validation image
    assert records[1]["image"] == "/data/local-files/?d=a%20b.tif"
    assert records[1]["choice"] == "track" and records[1]["id"] == 2
    (tmp_path / "labels.json").write_text(json.dumps(records))
    assert read_labels(tmp_path / "labels.json", CLASSES) == {"c.tif": "no track", "a b.tif": "track"}


def test_file_name_from_quoted_url_when_field_missing():
    assert file_of({"image": "/data/local-files/?d=round_1%2Flabelstudio%2Fx%20y.png"}) == "x y.png"


def test_unknown_label_names_the_record(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps([{"file_name": "a.tif", "choice": "maybe"}]))
    with pytest.raises(BpsrunError, match="record 0 has label 'maybe'"):
        read_labels(tmp_path / "labels.json", CLASSES)
