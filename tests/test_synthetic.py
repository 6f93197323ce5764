"""The synthetic benchmark: its class follows the image, not the metadata; classes come from the task config."""

import csv
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from bpsrun.data.manifest import BPS_NAME
from bpsrun.data.sources import synthetic
from bpsrun.data.synthetic import BINARY, CLASS_LISTS, SUBPOPS, SyntheticSpec, generate
from bpsrun.errors import BpsrunError

CONF = Path(__file__).resolve().parents[1] / "conf"
N = 1500


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    """One dataset per task, same seed: the same images, two truths."""
    cache = tmp_path_factory.mktemp("synthetic")
    return {
        task: synthetic(num_images=N, seed=11, cache_dir=str(cache), classes=list(classes)).meta_csv.parent
        for task, classes in CLASS_LISTS.items()
    }


def labels(root: Path) -> list[str]:
    return [r["label"] for r in rows(root / "truth.csv")]


def metadata_features(root: Path) -> np.ndarray:
    """What a model could learn without looking: particle, dose, hours, and plate and well from the file name."""
    out = []
    for r in rows(root / "meta.csv"):
        m = BPS_NAME.match(r["filename"])
        out.append([r["particle_type"], r["dose_Gy"], r["hr_post_exposure"], m["plate"], f"{m['plate']}-{m['well']}"])
    return OneHotEncoder(sparse_output=False).fit_transform(np.array(out))


@pytest.mark.parametrize("task", list(CLASS_LISTS))
@pytest.mark.parametrize(
    "model",
    [HistGradientBoostingClassifier(max_iter=50, random_state=0), LogisticRegression(max_iter=1000)],
    ids=["hist_gb", "logistic"],
)
def test_metadata_alone_does_not_beat_the_majority(roots, task, model):
    y = np.array(labels(roots[task]))
    majority = Counter(y).most_common(1)[0][1] / len(y)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    with threadpool_limits(1):  # OpenMP threads on a busy machine cost far more than they save on 1,500 rows
        accuracy = cross_val_score(model, metadata_features(roots[task]), y, cv=folds).mean()
    assert accuracy <= majority + 0.05, (task, accuracy, majority)


def test_class_names_and_mix_follow_the_task(roots):
    for task, classes in CLASS_LISTS.items():
        counts = Counter(labels(roots[task]))
        assert set(counts) == set(classes)
        assert 0.33 < counts["track"] / N < 0.43
    three = Counter(labels(roots["3class"]))
    assert min(three["scattered"], three["few foci"]) / N > 0.2


def test_binary_truth_is_three_class_merged_on_the_same_images(roots):
    binary, three = rows(roots["binary"] / "truth.csv"), rows(roots["3class"] / "truth.csv")
    assert [r["filename"] for r in binary] == [r["filename"] for r in three]
    assert [r["label"] for r in binary] == [BINARY[r["label"]] for r in three]
    assert roots["binary"] != roots["3class"]
    assert roots["binary"].name == f"synthetic-n{N}-s11-binary" and roots["3class"].name == f"synthetic-n{N}-s11-3class"
    for r in binary[:10]:
        image = Path("images") / r["filename"]
        assert (roots["binary"] / image).read_bytes() == (roots["3class"] / image).read_bytes()


def test_unknown_class_list_is_refused_in_one_line(tmp_path):
    for classes in (["track", "other"], ["no track", "track"], ["track", "scattered"]):
        with pytest.raises(BpsrunError) as err:
            synthetic(num_images=60, seed=1, cache_dir=str(tmp_path), classes=classes)
        message = str(err.value)
        assert "\n" not in message and "[track, no track]" in message and "[track, scattered, few foci]" in message
    assert not any(tmp_path.iterdir())


def test_task_configs_feed_the_synthetic_classes():
    for task, name, classes in (("binary", "bps-classification", "binary"), ("three_class", "bps-3class", "3class")):
        with initialize_config_dir(str(CONF), version_base="1.3"):
            cfg = compose("config", overrides=[f"task={task}"])
        assert cfg.task.name == name
        assert tuple(cfg.task.classes) == tuple(cfg.dataset.classes) == CLASS_LISTS[classes]


def test_subpopulations_are_recorded_apart_at_their_rates(roots):
    root = roots["3class"]
    assert list(rows(root / "meta.csv")[0]) == ["filename", "dose_Gy", "particle_type", "hr_post_exposure"]
    assert list(rows(root / "truth.csv")[0]) == ["filename", "label"]
    subpops = rows(root / "subpops.csv")
    assert [r["filename"] for r in subpops] == [r["filename"] for r in rows(root / "truth.csv")]
    counts = Counter(r["subpop"] for r in subpops)
    assert set(counts) == set(SUBPOPS) and math.isclose(sum(SUBPOPS.values()), 1.0)
    for name, p in SUBPOPS.items():
        assert abs(counts[name] / N - p) < 4 * math.sqrt(p * (1 - p) / N) + 0.005, (name, counts[name], p)


def test_same_seed_same_bytes(tmp_path):
    spec = SyntheticSpec(num_images=40, seed=3, classes=CLASS_LISTS["3class"])
    first, second = generate(spec, tmp_path / "a"), generate(spec, tmp_path / "b")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 40 + 3
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    other = generate(SyntheticSpec(num_images=40, seed=4), tmp_path / "c")
    assert (other / "meta.csv").read_bytes() != (first / "meta.csv").read_bytes()
    stamp = (first / "truth.csv").stat().st_mtime_ns
    assert generate(spec, first) == first and (first / "truth.csv").stat().st_mtime_ns == stamp  # idempotent
