"""A campaign through two rounds (in process, the real config composed by Hydra), its files and its MLflow store;
the command line's own behaviour (exit codes, the lock across processes) in the slow tier."""

import csv
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from bpsrun.context import Context
from bpsrun.data.manifest import read_manifest
from bpsrun.data.pool import Pool
from bpsrun.errors import BpsrunError
from bpsrun.layout import Layout
from bpsrun.lock import campaign_lock
from bpsrun.tracking.round_log import captions
from tests.conftest import ROUND_ARTIFACTS, compose_config, run_bpsrun, run_command, run_in_process, snapshot

CAMPAIGN = "synthetic-active-s0"


def mlflow_runs(outputs: Path) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{outputs}/mlflow.db")
    exp = client.get_experiment_by_name("bpsrun-synthetic")
    return client.search_runs([exp.experiment_id])


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, shared_data):
    outputs = tmp_path_factory.mktemp("outputs")
    printed = run_in_process("round=2", "selection=active", outputs=outputs, data=shared_data)
    return outputs, printed


def test_output_contract(campaign):
    outputs, printed = campaign
    root = outputs / CAMPAIGN
    manifest = list(csv.DictReader(open(root / "manifest.csv")))
    assert list(manifest[0])[:3] == ["file", "path", "split"]
    pool = [r["file"] for r in manifest if r["split"] == "train"]
    val = {r["file"] for r in manifest if r["split"] == "val"}
    assert val and len(pool) + len(val) == 60

    metadata = root / "lightly" / ".lightly" / "metadata"
    assert json.loads((metadata / "schema.json").read_text())[1]["path"] == "particle_type"
    assert len(list(metadata.glob("*_proj.json"))) == len(pool)

    picked: list[str] = []
    for r in (1, 2):
        rd = root / f"round_{r}"
        selected = (rd / "selected.txt").read_text().splitlines()
        assert len(selected) == 8 and not set(selected) & val and not set(selected) & set(picked)
        picked += selected
        labels = json.loads((rd / "labels.json").read_text())
        assert [rec["file_name"] for rec in labels] == selected
        assert {rec["choice"] for rec in labels} <= {"track", "no track"}
        metrics = json.loads((rd / "metrics.json").read_text())
        assert metrics["round"] == r and metrics["n_labeled"] == 8 * r
        assert 0.0 <= metrics["val_accuracy"] <= 1.0
        preds = rd / "lightly" / ".lightly" / "predictions"
        assert json.loads((preds / "tasks.json").read_text()) == ["bps-classification"]
        files = sorted((preds / "bps-classification").glob("*_proj.json"))
        assert len(files) == len(pool)
        for f in files:
            probs = json.loads(f.read_text())["predictions"][0]["probabilities"]
            assert len(probs) == 2 and abs(sum(probs) - 1.0) < 1e-9
    assert f"{'round':>5}  {'labeled':>7}  {'val acc':>7}" in printed


def test_round_two_picks_the_most_uncertain(campaign):
    outputs, _ = campaign
    root = outputs / CAMPAIGN
    preds = root / "round_1" / "lightly" / ".lightly" / "predictions" / "bps-classification"
    labeled = set((root / "round_1" / "selected.txt").read_text().split("\n"))
    margins = {}
    for f in preds.glob("*_proj.json"):
        rec = json.loads(f.read_text())
        if rec["file_name"] not in labeled:
            margins[rec["file_name"]] = abs(rec["predictions"][0]["probabilities"][0] - 0.5)
    picked = (root / "round_2" / "selected.txt").read_text().splitlines()
    assert max(margins[f] for f in picked) <= min(m for f, m in margins.items() if f not in picked) + 1e-9


def test_mlflow_parent_and_children(campaign):
    outputs, _ = campaign
    runs = mlflow_runs(outputs)
    parents = [r for r in runs if r.data.tags.get("bpsrun.kind") == "campaign"]
    children = [r for r in runs if r.data.tags.get("bpsrun.kind") == "round"]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["campaign"] == CAMPAIGN
    assert parent.data.params["selection.name"] == "active" and parent.data.params["seed"] == "0"
    assert parent.data.params["selection.n_samples"] == "8" and parent.data.params["model.name"] == "small_cnn"
    assert not any("token" in k.lower() for k in parent.data.params)
    assert "round" not in parent.data.params  # the target round differs between commands of one campaign
    client = MlflowClient(tracking_uri=f"sqlite:///{outputs}/mlflow.db")
    experiment = client.get_experiment_by_name("bpsrun-synthetic")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on the runs table
    curve = client.get_metric_history(parent.info.run_id, "val/accuracy")  # the campaign's learning curve
    assert sorted(m.step for m in curve) == [8, 16]
    for child in children:
        r = int(child.data.tags["bpsrun.round"])
        assert child.info.status == "FINISHED" and child.info.end_time > child.info.start_time
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.params["round"] == str(r) and child.data.params["n_labeled"] == str(8 * r)
        metrics = json.loads((outputs / CAMPAIGN / f"round_{r}" / "metrics.json").read_text())
        assert child.data.metrics["val/accuracy"] == pytest.approx(metrics["val_accuracy"], abs=1e-6)
        losses = client.get_metric_history(child.info.run_id, "train/loss")  # one point per epoch, live
        assert len(losses) == 2 and len({m.step for m in losses}) == 2
        for name in child.data.metrics:
            history = client.get_metric_history(child.info.run_id, name)
            assert all(m.value == m.value for m in history), name  # no NaN
            assert len({m.step for m in history}) == len(history), f"{name} logged twice at one step"
        assert {"val_acc", "val_accuracy", "val_balanced_acc"}.isdisjoint(child.data.metrics)
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert names == ROUND_ARTIFACTS


def test_rerun_of_finished_rounds_changes_nothing(campaign, shared_data):
    outputs, _ = campaign
    before = snapshot(outputs / CAMPAIGN)
    run_in_process("round=2", "selection=active", outputs=outputs, data=shared_data)
    assert snapshot(outputs / CAMPAIGN) == before
    assert len(mlflow_runs(outputs)) == 3


def test_changing_a_finished_rounds_selection_is_refused(campaign, shared_data):
    outputs, _ = campaign
    before = snapshot(outputs / CAMPAIGN)
    with pytest.raises(BpsrunError, match="round 1 of campaign synthetic-active-s0 is finished"):
        run_in_process("round=2", "selection=active", "selection.n_samples=9", outputs=outputs, data=shared_data)
    assert snapshot(outputs / CAMPAIGN) == before


def test_round_by_round_equals_one_run(campaign, tmp_path, shared_data):
    outputs, _ = campaign
    run_in_process("round=1", "selection=active", outputs=tmp_path, data=shared_data)
    run_in_process("round=2", "selection=active", outputs=tmp_path, data=shared_data)
    single, stepwise = snapshot(outputs / CAMPAIGN), snapshot(tmp_path / CAMPAIGN)
    for name in ("round_1/selected.txt", "round_1/labels.json", "round_1/metrics.json", "round_2/selected.txt"):
        assert stepwise[name] == single[name], name
    round_1_preds = [k for k in single if k.startswith("round_1/lightly/")]
    assert round_1_preds and all(stepwise[k] == single[k] for k in round_1_preds)


def test_each_round_logs_its_validation_accuracy(tmp_path, shared_data, caplog):
    with caplog.at_level(logging.INFO, logger="bpsrun"):
        run_in_process("round=2", "selection=active", outputs=tmp_path, data=shared_data)
    logged = [r.getMessage() for r in caplog.records if "validation accuracy" in r.getMessage()]
    expected = []
    for r in (1, 2):
        m = json.loads((tmp_path / CAMPAIGN / f"round_{r}" / "metrics.json").read_text())
        expected.append(
            f"round {r}: validation accuracy {m['val_accuracy']:.3f}, balanced {m['val_balanced_accuracy']:.3f}"
        )
    assert logged == expected


def test_second_writer_is_refused(campaign, shared_data):
    outputs, _ = campaign
    with campaign_lock(outputs / CAMPAIGN):  # flock: another open file description conflicts, in-process too
        with pytest.raises(BpsrunError, match="campaign is in use by another bpsrun process"):
            run_in_process("round=2", "selection=active", outputs=outputs, data=shared_data)


@pytest.mark.slow
def test_second_command_is_refused_and_dead_lock_is_taken_over(campaign, shared_data):
    outputs, _ = campaign
    with campaign_lock(outputs / CAMPAIGN):
        proc = run_command("round=2", "selection=active", outputs=outputs, data=shared_data, check=False)
    assert proc.returncode == 2 and "campaign is in use by another bpsrun process" in proc.stderr
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from bpsrun.lock import campaign_lock\n"
         "with campaign_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)", str(outputs / CAMPAIGN)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    run_command("round=2", "selection=active", outputs=outputs, data=shared_data)


@pytest.mark.slow
def test_round_zero_is_refused(tmp_path):
    proc = run_bpsrun("round=0", outputs=tmp_path, check=False)
    assert proc.returncode == 2 and "rounds count from 1" in proc.stderr


def test_pick_captions_name_the_file_label_and_the_prediction_picked_on(campaign, shared_data):
    outputs, _ = campaign
    cfg = compose_config("round=2", "selection=active", outputs=outputs, data=shared_data)
    ctx = Context(cfg, Layout(outputs / CAMPAIGN))
    ctx.pool = Pool(read_manifest(ctx.layout.manifest))
    for r in (1, 2):
        picks = ctx.layout.read_selected(r)
        labels = ctx.labels_until(r)
        lines = [c.split("\n") for c in captions(ctx, r, picks, labels)]
        assert [line[1] for line in lines] == [f"label {labels[f]}" for f in picks]
        assert all(Path(f).stem.endswith(line[0].lstrip("…")) for f, line in zip(picks, lines))
        if r == 1:
            assert {line[2] for line in lines} == {"no model yet"}
        else:  # round 1's model's prediction for each pick, as its Lightly prediction file says
            probs = ctx.previous_probs(2, picks)
            assert [line[2] for line in lines] == [f"pred {ctx.classes[p.argmax()]} {p.max():.2f}" for p in probs]
