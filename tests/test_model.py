"""Every model preset composes from the real config, trains a step and predicts probabilities."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from bpsrun.errors import BpsrunError
from bpsrun.model.module import flip_rotate
from bpsrun.model.train import build_module, evaluate, fit, mc_dropout_proba, predict_proba

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("model", ["small_cnn", "simple_cnn", "resnet18"])
def test_model_trains_and_predicts(model):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={model}", "model.image_size=48", "trainer.max_epochs=1",
                                           "trainer.min_samples_per_epoch=8"])  # fmt: skip
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 1, 48, 48)).astype(np.float16)
    y = np.array([0, 1] * 4)
    module, history = fit(cfg, x, y, x, y, seed=0, num_classes=2)
    assert len(history) == 1 and "train/loss" in history[0] and "val/acc" in history[0]
    probs = predict_proba(module, x, 4)
    assert probs.shape == (8, 2) and np.allclose(probs.sum(axis=1), 1.0)
    assert sum(p.numel() for p in module.parameters()) > 1000


def test_mc_dropout_passes_differ_and_need_dropout():
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(
            "config", overrides=["model.image_size=32", "trainer.max_epochs=1", "trainer.min_samples_per_epoch=8"]
        )
        resnet = compose("config", overrides=["model=resnet18"])
    x = np.random.default_rng(2).normal(size=(8, 1, 32, 32)).astype(np.float16)
    module = fit(cfg, x, np.array([0, 1] * 4), x, np.array([0, 1] * 4), seed=0, num_classes=2)[0]
    mc = mc_dropout_proba(module, x, passes=3, batch_size=8, seed=0)
    assert mc.shape == (3, 8, 2) and not np.allclose(mc[0], mc[1])
    assert not module.training  # back in eval mode: plain predictions stay deterministic
    with pytest.raises(BpsrunError, match="uncertainty_bald needs a model with dropout"):
        mc_dropout_proba(build_module(resnet.model, 2), x, passes=2, batch_size=8, seed=0)


def test_same_seed_same_weights():
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(
            "config", overrides=["model.image_size=32", "trainer.max_epochs=1", "trainer.min_samples_per_epoch=8"]
        )
    x = np.random.default_rng(1).normal(size=(8, 1, 32, 32)).astype(np.float16)
    y = np.array([0, 1] * 4)
    a = predict_proba(fit(cfg, x, y, x, y, seed=3, num_classes=2)[0], x, 8)
    b = predict_proba(fit(cfg, x, y, x, y, seed=3, num_classes=2)[0], x, 8)
    assert np.array_equal(a, b)


def test_flip_rotate_is_a_dihedral_transform():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(32, 1, 1, 1)
    out = flip_rotate(x)
    assert out.shape == x.shape
    assert torch.equal(out.flatten(1).sort(dim=1).values, x.flatten(1).sort(dim=1).values)
    assert len({tuple(o.flatten().tolist()) for o in out}) > 1


def test_evaluate_by_hand():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 0, 1, 1])  # predictions 0, 1, 0, 1
    m = evaluate(probs, y, 2)
    assert m["confusion"] == [[1, 1], [1, 1]]
    assert m["val_accuracy"] == 0.5 and m["val_balanced_accuracy"] == 0.5 and m["val_f1"] == 0.5
