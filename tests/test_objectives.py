"""Self-supervised objectives (embedding/method=simclr|byol|vicreg|dino): each trains the same backbone from the same
config seam, seeded, and BYOL's momentum target follows the online network as its schedule says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from bpsrun.embed import selfsup
from bpsrun.embed.objectives import BYOLObjective, DINOObjective
from bpsrun.model.trainers import Trainers
from tests.conftest import REPO

TINY = ["embedding.epochs=1", "embedding.width=4", "embedding.batch_size=16", "trainer.threads=1"]


def settings_of(method: str) -> tuple[selfsup.SSLSettings, Trainers]:
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"embedding/method={method}", *TINY])
    return selfsup.SSLSettings.of(**cfg.embedding), Trainers(cfg.trainer)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((32, 1, 24, 24), dtype=np.float32)


@pytest.mark.parametrize("method", ["simclr", "byol", "vicreg", "dino"])
def test_each_method_trains_the_backbone_and_the_same_seed_gives_the_same_weights(method, images):
    settings, trainers = settings_of(method)
    assert settings.method_name.lower() == method
    untrained = selfsup.ssl_backbone(settings.width)
    a = selfsup.train_ssl(images, trainers, settings, seed=3).backbone.state_dict()
    b = selfsup.train_ssl(images, trainers, settings, seed=3).backbone.state_dict()
    assert set(a) == set(untrained.state_dict())  # every method leaves the network learners build on
    assert all(torch.equal(a[k], b[k]) for k in a)
    weights = [k for k in a if k.endswith("weight")]
    assert any(not torch.equal(a[k], untrained.state_dict()[k]) for k in weights)
    assert not any(torch.equal(a[k], selfsup.train_ssl(images, trainers, settings, seed=4).backbone.state_dict()[k])
                   for k in weights)  # fmt: skip


def test_byol_target_is_an_ema_of_the_online_network_frozen_at_the_end():
    torch.manual_seed(0)
    backbone = selfsup.ssl_backbone(4)
    byol = BYOLObjective(backbone, feature_dim=16, momentum=0.9)
    key = "0.weight"
    start = byol.target_backbone.state_dict()[key].clone()
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(1.0)
    online = backbone.state_dict()[key]
    byol.step_done(backbone, progress=0.0)  # momentum 0.9: the target moves a tenth of the way
    torch.testing.assert_close(byol.target_backbone.state_dict()[key], 0.9 * start + 0.1 * online)
    moved = byol.target_backbone.state_dict()[key].clone()
    byol.step_done(backbone, progress=1.0)  # momentum 1: the target stays
    torch.testing.assert_close(byol.target_backbone.state_dict()[key], moved)
    assert not any(p.requires_grad for p in byol.target_backbone.parameters())


def test_dino_teacher_is_an_ema_of_the_student_and_its_centre_is_saved():
    torch.manual_seed(0)
    backbone = selfsup.ssl_backbone(4)
    dino = DINOObjective(backbone, feature_dim=16, dim=32, hidden_dim=32, bottleneck_dim=8, momentum=0.9)
    key = "0.weight"
    start = dino.teacher_backbone.state_dict()[key].clone()
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(1.0)
    dino.step_done(backbone, progress=0.0)
    torch.testing.assert_close(dino.teacher_backbone.state_dict()[key], 0.9 * start + 0.1 * backbone.state_dict()[key])
    assert not any(p.requires_grad for p in [*dino.teacher_backbone.parameters(), *dino.teacher_head.parameters()])
    views = torch.rand(2, 8, 1, 24, 24)
    dino.loss(backbone, *views).backward()  # the loss moves the centre towards the teacher's mean output
    assert dino.state_dict()["criterion.center"].abs().sum() > 0  # a buffer: saved with the checkpoint, resumed
