"""Using a campaign's model: each round's model logged to its MLflow run and registered under the campaign's name
(alias `current` on the newest round), loaded back as a pyfunc model, and `bpsrun predict` on a folder of images."""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from bpsrun.data.images import load_stack
from bpsrun.data.synthetic import SyntheticSpec, generate
from bpsrun.export.predictions import read_predictions
from bpsrun.serve import predict
from tests.conftest import REPO, run_in_process

CAMPAIGN = "synthetic-active-s0"
TASK = "bps-classification"
CLASSES = ["track", "no track"]
SECRET = "fake-tracking-password-5b9e1c"  # a config key that looks like a secret, with a value that cannot occur


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, shared_data) -> Path:
    out = tmp_path_factory.mktemp("outputs")
    run_in_process("round=2", "tracking.log_model=true", f"+tracking.password={SECRET}", outputs=out, data=shared_data)
    return out


@pytest.fixture(autouse=True)
def tracking_uri():
    """Loading `models:/` URIs reads MLflow's process-wide tracking URI; each test leaves it as it found it."""
    before = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(before)


def store(outputs: Path) -> str:
    return f"sqlite:///{outputs}/mlflow.db"


def pool(outputs: Path, campaign: str = CAMPAIGN) -> list[dict[str, str]]:
    return [r for r in csv.DictReader(open(outputs / campaign / "manifest.csv")) if r["split"] == "train"]


def exported(outputs: Path, r: int, files: list[str], campaign: str = CAMPAIGN) -> np.ndarray:
    """The campaign's own Lightly prediction export of round r."""
    return read_predictions(outputs / campaign / f"round_{r}" / "lightly" / ".lightly" / "predictions", TASK, files)


def test_each_round_is_a_version_and_current_is_the_newest(outputs):
    client = MlflowClient(tracking_uri=store(outputs))
    versions = {int(v.tags["bpsrun.round"]): v for v in client.search_model_versions(f"name='{CAMPAIGN}'")}
    assert sorted(versions) == [1, 2]
    current = client.get_model_version_by_alias(CAMPAIGN, "current")
    assert current.version == versions[2].version and current.tags["bpsrun.campaign"] == CAMPAIGN
    assert client.get_model_version_by_alias(CAMPAIGN, "latest").version == current.version  # MLflow's own alias
    run = client.get_run(current.run_id)
    assert run.data.tags["bpsrun.round"] == "2" and run.info.status == "FINISHED"
    assert "model/MLmodel" in {a.path for a in client.list_artifacts(current.run_id, "model")}
    assert run.data.metrics["model/log_seconds"] < 10


def test_the_registered_model_predicts_as_the_campaign_did(outputs):
    mlflow.set_tracking_uri(store(outputs))
    model = mlflow.pyfunc.load_model(f"models:/{CAMPAIGN}@current")
    rows = pool(outputs)[:12]
    table = model.predict(pd.DataFrame({"path": [r["path"] for r in rows]}))
    assert list(table.columns) == [*CLASSES, "label"]
    want = exported(outputs, 2, [r["file"] for r in rows])
    np.testing.assert_allclose(table[CLASSES].to_numpy(), want, atol=1e-5)
    assert list(table["label"]) == [CLASSES[k] for k in want.argmax(axis=1)]
    decoded = load_stack([Path(r["path"]) for r in rows], model.unwrap_python_model().learner.image_size)
    np.testing.assert_allclose(model.predict(decoded)[CLASSES].to_numpy(), want, atol=1e-5)


def test_the_saved_config_holds_no_secret(outputs, tmp_path):
    client = MlflowClient(tracking_uri=store(outputs))
    current = client.get_model_version_by_alias(CAMPAIGN, "current")
    model = Path(client.download_artifacts(current.run_id, "model", str(tmp_path)))
    config = yaml.safe_load((model / "artifacts" / "config.yaml").read_text())
    assert config["campaign"] == CAMPAIGN and "uri" in config["tracking"] and "password" not in config["tracking"]
    leaks = [p for p in model.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == []


def folder_to_classify(outputs: Path, tmp_path: Path) -> tuple[Path, list[str], list[str]]:
    """Four of the pool's images, three images the campaign never saw, and a meta.csv (ignored)."""
    images = tmp_path / "plate"
    images.mkdir()
    shared = [r["file"] for r in pool(outputs)[:4]]
    for r in pool(outputs)[:4]:
        shutil.copy(r["path"], images / r["file"])
    unseen = generate(SyntheticSpec(num_images=3, seed=4321), tmp_path / "unseen")
    new = [f"new_{k}.tif" for k in range(3)]
    for name, path in zip(new, sorted((unseen / "images").iterdir())):
        shutil.copy(path, images / name)
    shutil.copy(unseen / "meta.csv", images / "meta.csv")
    return images, shared, new


@pytest.mark.slow  # the command line in a subprocess
def test_bpsrun_predict_classifies_a_new_folder(outputs, tmp_path):
    images, shared, new = folder_to_classify(outputs, tmp_path)
    out = tmp_path / "out"
    args = ["--model", f"models:/{CAMPAIGN}@latest", "--images", str(images), "--out", str(out)]
    command = [sys.executable, "-m", "bpsrun", "predict", *args, "--tracking-uri", store(outputs)]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert [r["filename"] for r in rows] == sorted(shared + new)
    assert list(rows[0]) == ["filename", "label", *CLASSES]
    lightly = out / ".lightly" / "predictions"
    # the campaign's threads and kernels by default (--threads 1 --cpu-kernels avx2): its probabilities, bit for bit
    np.testing.assert_array_equal(read_predictions(lightly, TASK, shared), exported(outputs, 2, shared))
    by_name = {r["filename"]: r for r in rows}
    for name in new:
        probs = [float(by_name[name][c]) for c in CLASSES]
        assert by_name[name]["label"] == CLASSES[int(np.argmax(probs))] and abs(sum(probs) - 1) < 1e-5
    assert read_predictions(lightly, TASK, new).shape == (3, 2)


def refused(capsys, *args: str) -> str:
    """The one error line of `bpsrun predict ARGS` (progress lines may come before it), which exits 2."""
    with pytest.raises(SystemExit) as exited:
        predict.main(list(args))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "error" in line.lower()]
    assert line.startswith("bpsrun: error: ") and "Traceback" not in err, err
    return line


def test_predict_errors_are_one_line_naming_the_problem(outputs, tmp_path, capsys):
    images, _, _ = folder_to_classify(outputs, tmp_path)
    out = str(tmp_path / "out")
    model = f"models:/{CAMPAIGN}@current"
    missing = "models:/no-such-campaign@current"
    err = refused(capsys, "--model", missing, "--images", str(images), "--out", out, "--tracking-uri", store(outputs))
    assert missing in err and store(outputs) in err
    nowhere = f"sqlite:///{tmp_path}/nowhere.db"
    err = refused(capsys, "--model", model, "--images", str(images), "--out", out, "--tracking-uri", nowhere)
    assert nowhere in err and not (tmp_path / "nowhere.db").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "meta.csv").write_text("filename\n")
    err = refused(capsys, "--model", model, "--images", str(empty), "--out", out, "--tracking-uri", store(outputs))
    assert str(empty) in err and "no images" in err
    (images / "broken.tif").write_bytes(b"II*\x00 not a tiff")
    err = refused(capsys, "--model", model, "--images", str(images), "--out", out, "--tracking-uri", store(outputs))
    assert "broken.tif" in err and not (tmp_path / "out").exists()


def test_a_linear_probe_is_packed_with_the_embeddings_network(outputs, shared_data):
    overrides = ("round=1", "tracking.log_model=true", "model=linear_probe", "model.image_size=32", "campaign=probe")
    run_in_process(*overrides, outputs=outputs, data=shared_data)
    mlflow.set_tracking_uri(store(outputs))
    model = mlflow.pyfunc.load_model("models:/probe@current")
    rows = pool(outputs, "probe")[:12]
    table = model.predict(pd.DataFrame({"path": [r["path"] for r in rows]}))
    want = exported(outputs, 1, [r["file"] for r in rows], "probe")
    np.testing.assert_allclose(table[CLASSES].to_numpy(), want, atol=1e-5)


def test_log_model_false_logs_and_registers_nothing(outputs, shared_data):
    run_in_process("round=1", "tracking.log_model=false", "campaign=unlogged", outputs=outputs, data=shared_data)
    client = MlflowClient(tracking_uri=store(outputs))
    assert client.search_registered_models("name='unlogged'") == []
    experiment = client.get_experiment_by_name("bpsrun-synthetic").experiment_id
    (run,) = client.search_runs([experiment], "tags.`bpsrun.campaign` = 'unlogged' and tags.`bpsrun.kind` = 'round'")
    assert "model" not in {a.path for a in client.list_artifacts(run.info.run_id)}
