"""Every model preset composes from the real config, trains a step and predicts probabilities."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from bpsrun.errors import BpsrunError
from bpsrun.model.learner import ImageClassifier
from bpsrun.model.module import flip_rotate
from bpsrun.model.trainers import Trainers
from bpsrun.plugins import build

CONF = Path(__file__).resolve().parents[1] / "conf"
SHORT = ["trainer.max_epochs=1", "trainer.min_samples_per_epoch=8", "trainer.eval_batch_size=4"]


def learner(*overrides: str):
    """The configured learner, built as the campaign builds it (from `model`'s _target_)."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[*SHORT, *overrides])
    return build(cfg.model, "model", num_classes=2, trainers=Trainers(cfg.trainer))


@pytest.mark.parametrize("model", ["small_cnn", "simple_cnn", "resnet18"])
def test_model_trains_and_predicts(model):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 1, 48, 48)).astype(np.float16)
    y = np.array([0, 1] * 4)
    m = learner(f"model={model}", "model.image_size=48")
    history = m.fit((x, y), (x, y), seed=0)
    assert len(history) == 1 and "train/loss" in history[0] and "val/accuracy" in history[0]
    probs = m.predict_proba(x)
    assert probs.shape == (8, 2) and np.allclose(probs.sum(axis=1), 1.0)
    assert sum(p.numel() for p in m.module.parameters()) > 1000
    scores = m.evaluate((x, y))  # torchmetrics agree with the predictions' own confusion matrix
    pred = probs.argmax(axis=1)
    assert scores["confusion"] == [[int(((y == i) & (pred == j)).sum()) for j in (0, 1)] for i in (0, 1)]
    assert scores["val_accuracy"] == pytest.approx(float((pred == y).mean()), abs=1e-6)
    assert m.features(x).shape[0] == 8


def test_mc_dropout_passes_differ_and_need_dropout():
    x = np.random.default_rng(2).normal(size=(8, 1, 32, 32)).astype(np.float16)
    m = learner("model.image_size=32")
    m.fit((x, np.array([0, 1] * 4)), (x, np.array([0, 1] * 4)), seed=0)
    mc = m.mc_proba(x, passes=3, seed=0)
    assert mc.shape == (3, 8, 2) and not np.allclose(mc[0], mc[1])
    assert np.array_equal(mc, m.mc_proba(x, passes=3, seed=0))  # seeded: the same passes again
    assert np.array_equal(m.predict_proba(x), m.predict_proba(x))  # plain predictions: dropout off again
    resnet = learner("model=resnet18")
    resnet.fit((x, np.array([0, 1] * 4)), (x, np.array([0, 1] * 4)), seed=0)
    with pytest.raises(BpsrunError, match="uncertainty_bald needs a model with dropout"):
        resnet.mc_proba(x, passes=2, seed=0)


def test_same_seed_same_weights_and_save_load_round_trip(tmp_path):
    x = np.random.default_rng(1).normal(size=(8, 1, 32, 32)).astype(np.float16)
    y = np.array([0, 1] * 4)
    a, b = learner("model.image_size=32"), learner("model.image_size=32")
    a.fit((x, y), (x, y), seed=3)
    b.fit((x, y), (x, y), seed=3)
    assert np.array_equal(a.predict_proba(x), b.predict_proba(x))
    a.save(tmp_path / "model.pt")
    c = learner("model.image_size=32")
    c.load(tmp_path / "model.pt")
    assert np.array_equal(a.predict_proba(x), c.predict_proba(x))


def test_lr_schedule_is_a_config_group():
    """cosine decays the rate to zero over the run's optimiser steps; constant leaves it alone."""
    x = np.random.default_rng(1).normal(size=(8, 1, 32, 32)).astype(np.float16)
    y = np.array([0, 1] * 4)
    for schedule, final in (("cosine", 0.0), ("constant", 1e-3)):
        m = learner("model.image_size=32", f"trainer/lr_schedule={schedule}")
        m.fit((x, y), (x, y), seed=0)
        lr = m.module.trainer.optimizers[0].param_groups[0]["lr"]
        assert lr == pytest.approx(final, abs=1e-9), schedule


def test_flip_rotate_is_a_dihedral_transform():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(32, 1, 1, 1)
    out = flip_rotate(x)
    assert out.shape == x.shape
    assert torch.equal(out.flatten(1).sort(dim=1).values, x.flatten(1).sort(dim=1).values)
    assert len({tuple(o.flatten().tolist()) for o in out}) > 1


def test_evaluate_by_hand():
    """Validation metrics through trainer.validate and torchmetrics, on logits given as the inputs themselves."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=SHORT)
    m = ImageClassifier(lambda num_classes: nn.Flatten(), torch.optim.SGD, 2, 4, 2, Trainers(cfg.trainer))
    m.module = m.fresh()
    logits = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]]).reshape(5, 1, 1, 2)
    y = np.array([0, 0, 1, 1, 0])  # predictions 0, 1, 0, 1, 0
    scores = m.evaluate((logits, y))
    assert scores["confusion"] == [[2, 1], [1, 1]]
    assert scores["val_accuracy"] == 0.6
    assert scores["val_balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2, abs=1e-6)
    f1 = (2 * (2 / 3) * (2 / 3) / (4 / 3) + 0.5) / 2  # class 0: precision 2/3, recall 2/3; class 1: 1/2, 1/2
    assert scores["val_f1"] == pytest.approx(f1, abs=1e-6)
