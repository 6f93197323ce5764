"""The sweep report's labeling cost: minutes to 95 % of full supervision from labels.json lead_times, the figure
against minutes, and annotations beside labeled images, on a hand-made finished sweep (real configs, made-up
metrics and labels)."""

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from bpsrun.reference import reference_dir
from bpsrun.report.build import build_report
from bpsrun.report.cost import cumulative_minutes
from bpsrun.report.curves import Curve, campaign_metrics
from tests.conftest import REPO, tiny_overrides
from tests.test_report import save_job_config

FULL = 0.8  # the bar on every seed: 0.95 * 0.8 = 0.76
UNKNOWN = None

# (selection, seed) -> per round: validation accuracy, lead_times of its labels.json records, n_annotations in its
# metrics.json (None: not written, counted from labels.json). Four new images a round; labels.json may hold more
# records (a second annotator, a re-label). The cap is labeling.max_seconds_per_label = 600.
CAMPAIGNS = {
    # 13 min (1200 s capped to 600), then 8: crosses 0.76 at 0.6 of round 2 -> 13 + 0.6 * 8 = 17.8 min
    ("random", 0): [(0.70, [60, 60, 60, 1200], None), (0.80, [120] * 4, None)],
    # 2 min, then 6: round 1 already reaches 0.76 -> its 2 min
    ("random", 1): [(0.77, [30] * 4, None), (0.85, [90] * 4, None)],
    # two images annotated twice in round 1: 6, then 10 annotations (counted)
    ("tutorial", 0): [(0.72, [60] * 6, None), (0.78, [60] * 4, None)],
    # one unknown time in round 2: the arm gets no minutes; one image labeled again: 9 annotations
    ("tutorial", 1): [(0.75, [60] * 4, 4), (0.85, [60, 60, 60, 60, UNKNOWN], 9)],
}


def write_job(sweep: Path, cfg: DictConfig, rounds: list[tuple[float, list[float | None], int | None]]) -> None:
    """A job's saved config, its rounds' metrics.json and labels.json, and its seed's full supervision."""
    job = save_job_config(sweep, cfg)
    for r, (acc, lead_times, annotations) in enumerate(rounds, start=1):
        folder = Path(job.paths.outputs) / job.campaign / f"round_{r}"
        folder.mkdir(parents=True)
        metrics = {"n_labeled": 4 * r, "val_accuracy": acc}
        if annotations is not None:
            metrics["n_annotations"] = annotations
        (folder / "metrics.json").write_text(json.dumps(metrics))
        records = [
            {"file_name": f"r{r}_{i % 4}.png", "choice": "a", "annotator": f"a{i // 4}", "lead_time": t}
            for i, t in enumerate(lead_times)
        ]
        (folder / "labels.json").write_text(json.dumps(records))
    ref = reference_dir(job)
    ref.mkdir(parents=True, exist_ok=True)
    (ref / "metrics.json").write_text(json.dumps({"val_accuracy": FULL}))


@pytest.fixture
def timed_sweep(tmp_path) -> Path:
    sweep = tmp_path / "multirun" / "timed"
    campaign = "campaign='t-${selection.name}-s${seed}'"
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        for (selection, seed), rounds in CAMPAIGNS.items():
            job = ("experiment=compare_strategies", "round=2", campaign, f"selection={selection}", f"seed={seed}")
            cfg = compose("config", overrides=tiny_overrides(job, tmp_path, None), return_hydra_config=True)
            write_job(sweep, cfg, rounds)
    return sweep


def table_row(text: str, first: str) -> list[str]:
    (line,) = [line for line in text.splitlines() if line.startswith(first)]
    return re.split(r"\s{2,}", line)


def test_minutes_to_95_and_annotations_in_the_report(timed_sweep, tmp_path):
    text = build_report(timed_sweep)
    assert table_row(text, "arm")[-2:] == ["minutes to 95 %", "images labeled"]
    assert table_row(text, "random")[-2:] == ["9.9 ± 11.2 (2/2)", "8.0"]  # 17.8 and 2 min; 15.8 / sqrt(2)
    assert table_row(text, "tutorial")[-2:] == ["-", "8.0"]  # 8 images for 10 and 9 annotations
    assert (
        "minutes to 95 %: labeling minutes so far" in text
        and "images labeled: images with a label at the final" in text
    )

    report = timed_sweep / "report"
    rows = {r["arm"]: r for r in csv.DictReader((report / "summary.csv").open())}
    assert float(rows["random"]["minutes_to_95_mean"]) == pytest.approx(9.9)
    assert float(rows["random"]["minutes_to_95_sd"]) == pytest.approx(15.8 / math.sqrt(2))
    assert rows["random"]["reached_95_minutes"] == "2" and rows["random"]["images_labeled_mean"] == "8.0"
    assert math.isnan(float(rows["tutorial"]["minutes_to_95_mean"])) and rows["tutorial"]["reached_95_minutes"] == "0"
    assert float(rows["tutorial"]["images_labeled_mean"]) == 8.0
    curves = {(r["campaign"], r["round"]): r for r in csv.DictReader((report / "curves.csv").open())}
    assert [float(curves["t-random-s0", r]["labeling_minutes"]) for r in "12"] == [13.0, 21.0]
    assert curves["t-tutorial-s1", "2"]["labeling_minutes"] == ""
    assert [curves["t-tutorial-s0", r]["n_labeled"] for r in "12"] == ["6", "10"]  # the budget: annotations
    assert [curves["t-tutorial-s0", r]["n_images"] for r in "12"] == ["4", "8"]
    assert (report / "learning_curves_minutes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (exp,) = [e.experiment_id for e in client.search_experiments() if e.name == "bpsrun-synthetic"]
    (run,) = client.search_runs([exp], "tags.`bpsrun.kind` = 'sweep'")
    assert run.data.metrics["minutes_to_95pct_full/random"] == pytest.approx(9.9)
    assert "minutes_to_95pct_full/tutorial" not in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "learning_curves_minutes.png" in artifacts


def test_without_labeling_times_the_report_has_no_minutes(timed_sweep):
    build_report(timed_sweep, log_to_mlflow=False)
    for labels in timed_sweep.parent.parent.glob("t-*/round_*/labels.json"):  # as campaigns older than lead_time
        labels.write_text(json.dumps([{**rec, "lead_time": None} for rec in json.loads(labels.read_text())]))
    text = build_report(timed_sweep, log_to_mlflow=False)
    assert "minutes" not in text and "images labeled" in text  # tutorial's overlap is still a cost
    report = timed_sweep / "report"
    assert "minutes" not in (report / "summary.csv").read_text() + (report / "curves.csv").read_text()
    assert not (report / "learning_curves_minutes.png").exists()  # the earlier build's is gone


def test_minutes_need_every_time_of_every_round():
    known = [[{"lead_time": 90}, {"lead_time": 700}], [{"lead_time": 30}]]
    assert cumulative_minutes(known, cap=600) == pytest.approx([690 / 60, 720 / 60])
    assert cumulative_minutes([*known, [{"lead_time": 30}, {}]], cap=600) is None  # one time absent
    assert cumulative_minutes([known[0], None], cap=600) is None  # a round without labels.json


def test_a_campaigns_parent_run_gets_its_minutes_to_95():
    n, acc = np.array([4, 8]), np.array([0.70, 0.80])
    timed = Curve("random", 0, "t-random-s0", n, acc, FULL, "random", np.array([13.0, 21.0]))
    assert campaign_metrics(timed)["minutes_to_95pct_full"] == pytest.approx(17.8)
    assert "minutes_to_95pct_full" not in campaign_metrics(Curve("random", 0, "c", n, acc, FULL, "random"))


def test_the_learning_curves_x_axis_says_annotations_when_they_differ_from_images(timed_sweep, monkeypatch):
    from bpsrun.report import figures

    seen: list[list[str]] = []  # each figure's x labels, before it is written and closed

    def keep_labels(fig, path, title):
        seen.append([ax.get_xlabel() for ax in fig.axes])
        figures.plt.close(fig)

    monkeypatch.setattr(figures, "save", keep_labels)
    build_report(timed_sweep, log_to_mlflow=False)
    assert seen[0] == ["annotations (labels given)"] * 2  # learning_curves.png: tutorial labels images twice
    for labels_json in timed_sweep.parent.parent.glob("t-tutorial-*/round_*/labels.json"):
        records = json.loads(labels_json.read_text())
        labels_json.write_text(json.dumps(records[:4]))  # one annotation per image
    for metrics in timed_sweep.parent.parent.glob("t-tutorial-*/round_*/metrics.json"):
        metrics.write_text(
            json.dumps({k: v for k, v in json.loads(metrics.read_text()).items() if k != "n_annotations"})
        )
    seen.clear()
    build_report(timed_sweep, log_to_mlflow=False)
    assert seen[0] == ["labeled images"] * 2
