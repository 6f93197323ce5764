"""Sweep reports: learning-curve arithmetic on hand-made curves, arms and baselines, the report of a hand-made
finished sweep (real configs, made-up metrics), and the report of a real multirun."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from bpsrun.errors import BpsrunError
from bpsrun.reference import reference_dir
from bpsrun.report.__main__ import main as report_main
from bpsrun.report.arms import arm_names, baselines, named, shared_values
from bpsrun.report.build import build_report
from bpsrun.report.curves import (
    Curve,
    aulc,
    campaign_metrics,
    labels_to_reach,
    labels_to_reach_between,
    summarize,
    targets,
)
from bpsrun.report.jobs import job_choices
from bpsrun.report.mlflow_sweep import metric_arm
from tests.conftest import REPO, compose_config, run_command, tiny_overrides

N = np.array([10, 20, 40])


def test_aulc_is_the_trapezoid_area_over_the_label_range():
    assert aulc(N, np.array([0.5, 0.7, 0.9])) == pytest.approx((0.6 * 10 + 0.8 * 20) / 30)
    assert aulc(np.array([10]), np.array([0.8])) == 0.8


def test_labels_to_reach_is_the_first_budget_at_or_above_the_target():
    acc = np.array([0.5, 0.7, 0.9])
    assert labels_to_reach(N, acc, 0.7) == 20
    assert labels_to_reach(N, acc, 0.5) == 10
    assert math.isnan(labels_to_reach(N, acc, 0.95))


def test_labels_to_reach_between_rounds_is_linear_between_the_rounds_around_the_target():
    acc = np.array([0.5, 0.7, 0.9])
    assert labels_to_reach_between(N, acc, 0.6) == pytest.approx(15)  # halfway from 10 (0.5) to 20 (0.7)
    assert labels_to_reach_between(N, acc, 0.85) == pytest.approx(35)  # three quarters from 20 to 40
    assert labels_to_reach_between(N, acc, 0.7) == 20  # reached exactly at a round
    assert labels_to_reach_between(N, acc, 0.4) == 10  # the first round already reaches it
    assert math.isnan(labels_to_reach_between(N, acc, 0.95))
    # a dip does not count: the first crossing is the one between rounds 2 and 3
    assert labels_to_reach_between(N, np.array([0.5, 0.4, 0.9]), 0.65) == pytest.approx(30)


def test_summary_pairs_each_arm_with_its_baseline_by_seed():
    curves = [
        Curve("random", 0, "r0", N, np.array([0.5, 0.7, 0.9]), 1.0, "random"),
        Curve("random", 1, "r1", N, np.array([0.6, 0.6, 0.8]), 0.9, "random"),
        Curve("active", 0, "a0", N, np.array([0.6, 0.8, 0.9]), 1.0, "active"),
        Curve("active", 1, "a1", N, np.array([0.6, 0.8, 1.0]), 0.9, "active"),
    ]
    random, active = summarize(curves, {"random": None, "active": "random"}, fraction=0.95)
    assert random.arm == "random" and random.vs is None
    assert random.aulc == pytest.approx((0.7, math.sqrt(2 * (1 / 30) ** 2)))  # 0.7333 and 0.6667
    assert random.reached == 0 and math.isnan(random.labels_to_target[0])
    # active: AULC 0.8 and 0.8333; paired differences 1/15 and 1/6, both positive
    assert active.aulc[0] == pytest.approx(49 / 60)
    vs = active.vs
    assert vs.baseline == "random" and vs.seeds == 2 and vs.beats == 1.0
    assert vs.aulc == pytest.approx((7 / 60, math.sqrt(2 * 0.05**2)))
    assert vs.ci == pytest.approx((1 / 15, 1 / 6))  # two values: the interval spans them (tests/test_report_stats.py)
    assert vs.curve[10] == pytest.approx((0.05, 0.0, 0.1)) and vs.curve[40] == pytest.approx((0.1, 0.0, 0.2))
    assert active.accuracy[20] == pytest.approx((0.8, 0.0))
    assert active.accuracy[40] == pytest.approx((0.95, math.sqrt(2 * 0.05**2)))
    assert active.band[20] == pytest.approx((0.8, 0.8)) and active.full == pytest.approx((0.95, math.sqrt(0.005)))
    # 95 % of full: seed 0 needs 0.95 (never), seed 1 needs 0.855 (reached at 40 labels); random never: no ratio
    assert active.reached == 1 and active.labels_to_target == (40.0, 0.0)
    assert math.isnan(vs.labels_ratio) and vs.ratio_seeds == 0
    # random's final accuracy (0.9 at 40, 0.8 at 40): active reaches it at 40 labels on seed 0 (0.8 -> 0.9 between
    # 20 and 40) and at 20 on seed 1 (exactly at round 2): 30 ± 14.1 labels, shares 1.0 and 0.5 -> sqrt(0.5)
    assert vs.to_final == pytest.approx((30.0, math.sqrt(200))) and vs.to_final_seeds == 2
    assert vs.to_final_ratio == pytest.approx(math.sqrt(0.5))
    assert campaign_metrics(curves[3])["labels_to_95pct_full"] == 40
    assert campaign_metrics(curves[3])["fraction_of_full"] == pytest.approx(1.0 / 0.9)


def test_labels_to_target_share_one_bar_per_seed_across_learners():
    """A probe with a lower ceiling is held to the CNN's bar on the same seed, so the ratio compares like with like."""
    curves = [
        Curve("cnn/random", 0, "c0", N, np.array([0.5, 0.7, 0.9]), 0.9, "random"),
        Curve("probe/random", 0, "p0", N, np.array([0.8, 0.86, 0.87]), 0.87, "random"),
    ]
    assert targets(curves, 0.95) == {0: pytest.approx(0.855)}
    cnn, probe = summarize(curves, {"cnn/random": None, "probe/random": "cnn/random"}, fraction=0.95)
    assert cnn.labels_to_target[0] == 40 and probe.labels_to_target[0] == 20
    assert probe.vs.labels_ratio == pytest.approx(0.5) and probe.vs.ratio_seeds == 1
    assert probe.vs.seeds == 1 and all(math.isnan(v) for v in probe.vs.ci)  # one seed: no interval


def choices(**kw: str) -> dict[str, str]:
    return {"experiment": "compare_strategies", "dataset": "synthetic", **kw}


def test_arms_are_named_by_the_strategy_when_only_it_varies():
    jobs = [choices(selection=s) for s in ("random", "typiclust", "random", "typiclust")]
    names, arms = arm_names(jobs)
    assert names == ["random", "typiclust", "random", "typiclust"]
    assert baselines(arms, None) == {"random": None, "typiclust": "random"}


def test_arms_name_the_learner_first_and_pair_with_random_under_the_same_learner():
    jobs = [choices(selection=s, model=m) for m in ("small_cnn", "linear_probe") for s in ("random", "typiclust")]
    names, arms = arm_names(jobs)
    assert names == ["small_cnn/random", "small_cnn/typiclust", "linear_probe/random", "linear_probe/typiclust"]
    assert baselines(arms, None) == {
        "small_cnn/random": None,
        "small_cnn/typiclust": "small_cnn/random",
        "linear_probe/random": None,
        "linear_probe/typiclust": "linear_probe/random",
    }


def test_a_recipe_is_named_by_what_it_chose_and_any_arm_can_be_the_baseline():
    recipes = {"tutorial": ("small_cnn", "tutorial"), "bpsrun": ("linear_probe", "typiclust")}
    recipes["bpsrun_random"] = ("linear_probe", "random")
    jobs = [choices(recipe=r, model=m, selection=s) for r, (m, s) in recipes.items()]
    names, arms = arm_names(jobs)
    assert names == ["small_cnn/tutorial", "linear_probe/typiclust", "linear_probe/random"]
    assert baselines(arms, None) == {
        "small_cnn/tutorial": None,  # no small_cnn/random in this sweep
        "linear_probe/typiclust": "linear_probe/random",
        "linear_probe/random": None,
    }
    assert baselines(arms, "small_cnn/tutorial") == {
        "small_cnn/tutorial": None,
        "linear_probe/typiclust": "small_cnn/tutorial",
        "linear_probe/random": "small_cnn/tutorial",
    }
    with pytest.raises(BpsrunError, match="'cnn' is no arm of this sweep; its arms: small_cnn/tutorial, linear_probe"):
        baselines(arms, "cnn")


def test_a_baseline_naming_more_choices_than_vary_finds_the_arm_that_made_them():
    """compare_recipes' report.baseline (small_cnn/tutorial) in a sweep of recipes with one learner: arms are named by
    the strategy alone, and the baseline is the arm that chose both."""
    jobs = [
        choices(recipe=r, model="small_cnn", selection=s)
        for r, s in (("tutorial", "tutorial"), ("tutorial_random", "random"))
    ]
    names, arms = arm_names(jobs * 2)
    assert names == ["tutorial", "random"] * 2
    shared = shared_values(jobs * 2, names)
    assert named("small_cnn/tutorial", shared) == "tutorial" and named("random", shared) == "random"
    assert baselines(arms, named("small_cnn/tutorial", shared)) == {"tutorial": None, "random": "tutorial"}
    with pytest.raises(
        BpsrunError, match="'linear_probe/tutorial' is no arm of this sweep; its arms: tutorial, random"
    ):
        named("linear_probe/tutorial", shared)  # no arm chose linear_probe
    with pytest.raises(BpsrunError, match="'small_cnn' is no arm"):
        named("small_cnn", shared)  # both arms chose it: it names none


def test_other_swept_values_are_named_as_written_and_fit_mlflow_metric_names():
    jobs = [
        choices(selection=s, **{"selection.n_samples": f"selection.n_samples={n}"})
        for s in ("random", "bald")
        for n in (8, 16)
    ]
    names, arms = arm_names(jobs)
    assert names[:2] == ["random/selection.n_samples=8", "random/selection.n_samples=16"]
    assert baselines(arms, None)["bald/selection.n_samples=16"] == "random/selection.n_samples=16"
    assert (
        metric_arm(names[0]) == "random/selection.n_samples_8"
        and metric_arm("small_cnn/tutorial") == "small_cnn/tutorial"
    )
    assert arm_names([choices(selection="random")] * 2)[0] == ["random", "random"]  # seeds only: named by strategy


def test_job_choices_are_its_groups_and_other_overrides_but_not_the_seed():
    hydra = OmegaConf.create(
        {
            "hydra": {
                "runtime": {
                    "choices": {
                        "model": "small_cnn",
                        "recipe": "tutorial",
                        "experiment": None,
                        "hydra/launcher": "joblib",
                    }
                },
                "overrides": {"task": ["+recipe=tutorial", "seed=3", "round=2", "++trainer.max_epochs=5"]},
            }
        }
    )
    assert job_choices(hydra) == {
        "model": "small_cnn",
        "recipe": "tutorial",
        "round": "round=2",
        "trainer.max_epochs": "++trainer.max_epochs=5",
    }


def test_recipes_choose_the_learner_and_the_strategy(tmp_path):
    """conf/recipe/: compare_recipes sweeps +recipe; each sets model and selection. A stand-in linear_probe
    (the CNN's settings under that name) keeps this test independent of the probe's own config."""
    models = tmp_path / "conf" / "model"
    models.mkdir(parents=True)
    small_cnn = (REPO / "conf" / "model" / "small_cnn.yaml").read_text()
    (models / "linear_probe.yaml").write_text(small_cnn.replace("name: small_cnn", "name: linear_probe"))

    def recipe(name: str) -> DictConfig:
        return compose_config("experiment=compare_recipes", f"+recipe={name}", outputs=tmp_path, conf=tmp_path / "conf")

    tutorial = recipe("tutorial")
    assert (tutorial.model.name, tutorial.selection.name, tutorial.campaign) == (
        "small_cnn",
        "tutorial",
        "rcp-synthetic-small_cnn-tutorial-s0",
    )
    first, later = tutorial.selection.first_round.strategies, tutorial.selection.later_rounds.strategies
    assert [s.strategy.type for s in first] == ["DIVERSITY"] and first[0].input.type == "EMBEDDINGS"
    assert [(s.input.score, s.strategy.type) for s in later] == [("uncertainty_entropy", "WEIGHTS")]
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):  # without the TINY settings
        arm, main = compose("config", ["experiment=compare_recipes", "+recipe=tutorial"]), compose("config")
    assert arm.trainer == main.trainer and arm.model == main.model  # the tutorial's arm trains as the main command
    assert tutorial.report.baseline == "small_cnn/tutorial" and tutorial.reference.enabled
    for name, selection in (("bpsrun", "typiclust"), ("bpsrun_random", "random")):
        cfg = recipe(name)
        assert (cfg.model.name, cfg.selection.name) == ("linear_probe", selection)


SEEDS = (0, 1, 2)
FULL = {"small_cnn": 0.78, "simple_cnn": 0.70}  # the shared bar per seed: 0.95 * 0.78 = 0.741


def made_up_accuracy(model: str, selection: str, seed: int) -> list[float]:
    """At 8 and 16 labels: tutorial beats random by 0.05 everywhere; simple_cnn is 0.1 below small_cnn."""
    base = 0.70 + 0.01 * seed + (0.05 if selection == "tutorial" else 0) - (0.1 if model == "simple_cnn" else 0)
    return [base, base + 0.06]


def save_job_config(sweep: Path, cfg: DictConfig) -> DictConfig:
    """The job's config and Hydra's, saved where a multirun saves them; the job's config."""
    hydra = OmegaConf.to_container(cfg.hydra)
    hydra["runtime"]["cwd"] = str(REPO)
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    saved = sweep / job.campaign / ".hydra"
    saved.mkdir(parents=True)
    OmegaConf.save(job, saved / "config.yaml")
    OmegaConf.save({"hydra": hydra}, saved / "hydra.yaml")
    return job


def write_job(sweep: Path, cfg: DictConfig) -> None:
    """Where Hydra saves a job's config and a campaign and its reference write their metrics."""
    model, selection = cfg.hydra.runtime.choices.model, cfg.hydra.runtime.choices.selection
    job = save_job_config(sweep, cfg)
    for r, acc in enumerate(made_up_accuracy(model, selection, int(job.seed)), start=1):
        (Path(job.paths.outputs) / job.campaign / f"round_{r}").mkdir(parents=True)
        metrics = {"n_labeled": 8 * r, "val_accuracy": acc}
        (Path(job.paths.outputs) / job.campaign / f"round_{r}" / "metrics.json").write_text(json.dumps(metrics))
    ref = reference_dir(job)
    ref.mkdir(parents=True, exist_ok=True)
    (ref / "metrics.json").write_text(json.dumps({"val_accuracy": FULL[model]}))


@pytest.fixture
def grid_sweep(tmp_path) -> Path:
    """model x selection x 3 seeds, finished, without training: the configs as the command composes them."""
    sweep = tmp_path / "multirun" / "grid"
    campaign = "campaign='g-${model.name}-${selection.name}-s${seed}'"
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        for model in FULL:
            for selection in ("random", "tutorial"):
                for seed in SEEDS:
                    job = (
                        "experiment=compare_strategies",
                        "round=2",
                        campaign,
                        f"model={model}",
                        f"selection={selection}",
                        f"seed={seed}",
                    )
                    write_job(
                        sweep,
                        compose("config", overrides=tiny_overrides(job, tmp_path, None), return_hydra_config=True),
                    )
    return sweep


def summary_rows(sweep: Path) -> dict[str, dict[str, str]]:
    return {r["arm"]: r for r in csv.DictReader((sweep / "report" / "summary.csv").open())}


def test_report_of_a_model_by_strategy_sweep(grid_sweep, tmp_path):
    text = build_report(grid_sweep)
    rows = summary_rows(grid_sweep)
    assert set(rows) == {"small_cnn/random", "small_cnn/tutorial", "simple_cnn/random", "simple_cnn/tutorial"}
    best = rows["small_cnn/tutorial"]
    assert (best["strategy"], best["baseline"], best["paired_seeds"], best["seeds"]) == (
        "tutorial",
        "small_cnn/random",
        "3",
        "3",
    )
    assert float(best["aulc_vs_baseline_mean"]) == pytest.approx(0.05)
    assert float(best["aulc_vs_baseline_ci_low"]) == pytest.approx(0.05) == float(best["aulc_vs_baseline_ci_high"])
    assert float(best["beats_baseline_share"]) == 1.0
    # the bar is 0.741 on every seed: tutorial gets there at 8 labels, random at 16
    assert (float(best["labels_to_95_mean"]), best["reached_95"]) == (8.0, "3")
    assert float(best["labels_ratio_vs_baseline"]) == pytest.approx(0.5) and best["labels_ratio_seeds"] == "3"
    assert float(best["acc_8_ci_low"]) == pytest.approx(0.75) and float(best["acc_8_ci_high"]) == pytest.approx(0.77)
    simple = rows["simple_cnn/tutorial"]
    assert simple["baseline"] == "simple_cnn/random" and float(simple["aulc_vs_baseline_mean"]) == pytest.approx(0.05)
    assert simple["reached_95"] == "0" and float(simple["full_supervision_mean"]) == pytest.approx(0.70)
    assert (rows["small_cnn/random"]["baseline"], rows["small_cnn/random"]["paired_seeds"]) == ("", "0")
    assert "  vs  " in text.splitlines()[1]  # two baselines: a column names each arm's
    assert "best arm by mean AULC: small_cnn/tutorial, +0.050 [+0.050, +0.050] AULC over small_cnn/random" in text
    assert "higher on 3 of 3 paired seeds (the interval excludes 0; fewer than 10 paired seeds" in text
    assert "(mean 0.741)" in text and "percentile bootstrap of the mean over seeds (10,000 resamples)" in text
    report = grid_sweep / "report"
    assert (report / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((report / "curves.csv").read_text().splitlines()) == 1 + 12 * 2
    assert (report / "report.md").read_text() == f"```\n{text}\n```\n"

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (exp,) = [e.experiment_id for e in client.search_experiments() if e.name == "bpsrun-synthetic"]
    (run,) = client.search_runs([exp], "tags.`bpsrun.kind` = 'sweep'")
    assert run.data.metrics["aulc_vs_baseline/small_cnn/tutorial"] == pytest.approx(0.05)
    assert run.data.metrics["labels_ratio_vs_baseline/small_cnn/tutorial"] == pytest.approx(0.5)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "learning_curve/simple_cnn/random")] == [8, 16]
    assert run.data.params["arms"].count("/") == 4 and run.data.params["baseline"] == "selection=random per arm"


def test_the_baseline_comes_from_the_sweep_config_or_the_command_line(grid_sweep, capsys):
    for config in grid_sweep.glob("*/.hydra/config.yaml"):  # as experiment=compare_recipes sets it
        OmegaConf.save(OmegaConf.merge(OmegaConf.load(config), {"report": {"baseline": "small_cnn/tutorial"}}), config)
    text = build_report(grid_sweep, log_to_mlflow=False)
    assert "AULC - small_cnn/tutorial [95 % CI]" in text  # one baseline for all: the header names it
    rows = summary_rows(grid_sweep)
    assert {r["baseline"] for r in rows.values()} == {"small_cnn/tutorial", ""}
    assert float(rows["simple_cnn/random"]["aulc_vs_baseline_mean"]) == pytest.approx(-0.15)
    assert float(rows["simple_cnn/random"]["beats_baseline_share"]) == 0.0

    assert report_main([str(grid_sweep), "--baseline", "simple_cnn/random", "--no-mlflow"]) == 0
    rows = summary_rows(grid_sweep)
    assert float(rows["small_cnn/tutorial"]["aulc_vs_baseline_mean"]) == pytest.approx(0.15)
    assert rows["simple_cnn/random"]["baseline"] == ""
    assert report_main([str(grid_sweep), "--baseline", "tutorial", "--no-mlflow"]) == 2
    assert (
        "bpsrun: error: baseline 'tutorial' is no arm of this sweep; its arms: simple_cnn/random,"
        in capsys.readouterr().err
    )


def expected_aulc(root) -> float:
    """Recomputed from the campaign's own files, independently of the report code."""
    rounds = sorted(root.glob("round_*/metrics.json"))
    n, acc = zip(*[(m["n_labeled"], m["val_accuracy"]) for m in (json.loads(p.read_text()) for p in rounds)])
    return float(np.trapezoid(acc, n) / (n[-1] - n[0]))


@pytest.mark.slow
def test_multirun_ends_with_a_report_logged_to_mlflow(tmp_path, shared_data):
    """compare_strategies shrunk to 2 strategies x 2 seeds, two rounds, through the joblib launcher (2 workers)."""
    overrides = ("-m", "experiment=compare_strategies", "selection=random,diversity", "seed=0,1", "round=2")
    proc = run_command(*overrides, "selection.n_samples=8", "trainer.max_epochs=2", outputs=tmp_path, data=shared_data)
    assert "Joblib" in proc.stdout + proc.stderr  # the experiment's launcher, not the basic one
    (sweep,) = (tmp_path / "multirun" / "compare_strategies").iterdir()
    report = sweep / "report"
    assert (report / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = {r["strategy"]: r for r in csv.DictReader((report / "summary.csv").open())}
    assert set(rows) == {"random", "diversity"} and all(r["arm"] == r["strategy"] for r in rows.values())
    assert rows["diversity"]["baseline"] == "random" and rows["diversity"]["paired_seeds"] == "2"
    picks = {s: (tmp_path / f"cmp-synthetic-random-s{s}" / "round_1" / "selected.txt").read_text() for s in (0, 1)}
    assert picks[0] != picks[1]  # every strategy x seed is its own campaign: the seed changes random's picks
    for name, row in rows.items():
        aulcs = [expected_aulc(tmp_path / f"cmp-synthetic-{name}-s{s}") for s in (0, 1)]
        assert float(row["aulc_mean"]) == pytest.approx(np.mean(aulcs))
        assert float(row["aulc_sd"]) == pytest.approx(np.std(aulcs, ddof=1))
        assert int(row["seeds"]) == 2
    # full supervision: one reference per seed, shared by both strategies, trained on the whole pool
    refs = sorted(p.name for p in (tmp_path / "reference").iterdir() if p.is_dir())
    assert len(refs) == 2 and refs[0].startswith("synthetic-small_cnn-s0-")
    full = [json.loads((tmp_path / "reference" / r / "metrics.json").read_text()) for r in refs]
    manifest = (tmp_path / "cmp-synthetic-random-s0" / "manifest.csv").read_text()
    assert full[0]["n_labeled"] == manifest.count(",train,")
    assert float(rows["random"]["full_supervision_mean"]) == pytest.approx(np.mean([m["val_accuracy"] for m in full]))
    assert "best arm by mean AULC: " in proc.stdout and "AULC - random [95 % CI]" in proc.stdout

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (exp,) = [e.experiment_id for e in client.search_experiments() if e.name == "bpsrun-synthetic"]
    (sweep_run,) = client.search_runs([exp], "tags.`bpsrun.kind` = 'sweep'")
    artifacts = {a.path for a in client.list_artifacts(sweep_run.info.run_id)}
    assert {"learning_curves.png", "summary.csv", "curves.csv", "report.md"} <= artifacts
    assert sweep_run.data.metrics["aulc/diversity"] == pytest.approx(float(rows["diversity"]["aulc_mean"]))
    assert len(client.search_runs([exp], "tags.`bpsrun.kind` = 'reference'")) == 2
    parent = client.search_runs(
        [exp], "tags.`bpsrun.campaign` = 'cmp-synthetic-random-s1' and tags.`bpsrun.kind` = 'campaign'"
    )[0]
    assert parent.data.metrics["aulc"] == pytest.approx(expected_aulc(tmp_path / "cmp-synthetic-random-s1"))
    assert parent.data.tags["bpsrun.sweep"] == str(sweep.resolve())

    # on demand, from another folder: the same table, and the sweep's MLflow run replaced, not duplicated
    again = subprocess.run(
        [sys.executable, "-m", "bpsrun.report", str(sweep)], cwd=tmp_path, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert (report / "report.md").read_text().strip("`\n") in again.stdout
    assert len(client.search_runs([exp], "tags.`bpsrun.kind` = 'sweep'")) == 1


@pytest.mark.slow
def test_report_of_a_folder_that_is_not_a_sweep_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bpsrun.report", str(tmp_path)], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert f"{tmp_path}: holds no Hydra jobs" in proc.stderr
