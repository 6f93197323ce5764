"""model=semi (FixMatch on the embedding's network) and model=semi_cnn (FixMatch on small_cnn's network from
scratch): the unlabeled images it learns from are the training pool's rows
without the labeled ones (never a validation row), a seed fixes its weights, it falls back to the labels alone
where pseudo-labels cannot help, and the consistency term is masked by the confidence threshold."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from bpsrun.data.pool import PoolStack
from bpsrun.embed import selfsup
from bpsrun.embed.encoder import Encoder
from bpsrun.model.semi import aligned, cutout
from bpsrun.model.trainers import Trainers
from bpsrun.plugins import build
from tests.conftest import run_in_process
from tests.test_learners import SIZE, ToyBackbone, config, toy_problem

N = 48
VAL = list(range(0, N, 5))  # manifest rows of the validation set (both classes): never in the training pool
TRAIN = [i for i in range(N) if i % 5]  # the training pool's rows


def backbone() -> torch.nn.Module:
    """The same small SimCLR network for every learner, as one embedding would give."""
    torch.manual_seed(0)
    return selfsup.ssl_backbone(width=4)


@pytest.fixture(params=["semi", "semi_cnn"])
def name(request) -> str:
    """Each FixMatch learner: the behaviour below is FixMatchLearner's, whatever network it trains."""
    return request.param


def semi_learner(pool, name: str, *overrides: str):
    cfg = config(f"model={name}", f"model.image_size={SIZE}", *overrides)
    trainers = Trainers(cfg.trainer)
    encoder = Encoder(lambda: ToyBackbone(backbone()), trainers)
    return build(cfg.model, "model", {"encoder": encoder, "pool": pool}, num_classes=2, trainers=trainers)


@pytest.fixture
def cache(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A toy image cache of N manifest rows, and their classes."""
    x, y = toy_problem(N, 0)
    np.save(tmp_path / "cache.npy", x)
    return tmp_path / "cache.npy", y


def split(cache: tuple[Path, np.ndarray], rows: list[int]) -> tuple[PoolStack, np.ndarray]:
    path, y = cache
    return PoolStack(path, rows), y[rows]


def pool_of(cache: tuple[Path, np.ndarray]):
    return lambda size: PoolStack(cache[0], TRAIN)


def test_it_learns_from_the_training_pool_without_the_labeled_and_validation_rows(cache, stack_reads, name):
    reads = stack_reads  # id(stack) -> the manifest rows read from it
    labeled, val = split(cache, TRAIN[:8]), split(cache, VAL)
    m = semi_learner(pool_of(cache), name)
    m.fit(labeled, val, seed=0)
    assert set(reads) == {id(labeled[0]), id(val[0]), id(m.unlabeled)}  # no other images were read
    assert reads[id(m.unlabeled)] == set(TRAIN) - set(TRAIN[:8])  # every unlabeled pool image, no labeled one
    assert not reads[id(m.unlabeled)] & set(VAL)
    assert reads[id(val[0])] == set(VAL)


def test_the_same_seed_gives_the_same_weights(cache, name):
    labeled = split(cache, TRAIN[:12])

    def weights(seed: int) -> dict[str, torch.Tensor]:
        m = semi_learner(pool_of(cache), name)
        m.fit(labeled, None, seed=seed)
        assert m.unlabeled is not None  # trained with the consistency term
        return m.module.state_dict()

    a, b, c = weights(3), weights(3), weights(4)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize(
    "labeled, line",
    [
        ([i for i in TRAIN if i % 2][:12], "the labels hold 1 of the 2 classes"),  # odd: class 1
        (TRAIN, "no unlabeled training-pool image is left"),
    ],
)
def test_without_use_for_pseudo_labels_it_says_so_and_trains_on_the_labels(
    cache, caplog, tmp_path, labeled, line, name
):
    m = semi_learner(pool_of(cache), name)
    with caplog.at_level(logging.INFO, logger="bpsrun"):
        history = m.fit(split(cache, labeled), split(cache, VAL), seed=0)
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"model={name}: {line}")] != []
    assert m.unlabeled is None and "train/unlabeled_loss" not in history[-1] and "val/accuracy" in history[-1]
    x = PoolStack(cache[0], list(range(N)))
    probs = m.predict_proba(x)
    assert probs.shape == (N, 2) and probs.dtype == np.float64 and np.allclose(probs.sum(axis=1), 1.0)
    m.save(tmp_path / "model.pt")
    loaded = semi_learner(None, name)  # model.pt and the encoder are enough to predict
    loaded.load(tmp_path / "model.pt")
    assert np.array_equal(loaded.predict_proba(x), probs)


@pytest.mark.parametrize("threshold, kept", [(0.0, 1.0), (1.01, 0.0)])
def test_the_threshold_masks_the_unlabeled_loss(cache, threshold, kept, name):
    m = semi_learner(pool_of(cache), name, f"model.threshold={threshold}")
    history = m.fit(split(cache, TRAIN[:12]), None, seed=0)
    assert all(row["train/mask_rate"] == kept for row in history)
    assert all((row["train/unlabeled_loss"] > 0) == bool(kept) for row in history)


def test_training_stops_at_max_steps(cache, name):
    m = semi_learner(pool_of(cache), name, "model.max_steps=4")  # trainer.max_epochs=3 would make 6 steps
    history = m.fit(split(cache, TRAIN[:12]), None, seed=0)
    assert m.module.trainer.global_step == 4 and history[-1]["step"] == 4


def test_alignment_rescales_by_the_target_over_the_running_mean():
    p = torch.tensor([[0.6, 0.4], [0.9, 0.1]])
    # row 0: [0.6 * 0.5 / 0.75, 0.4 * 0.5 / 0.25] = [0.4, 0.8] -> [1/3, 2/3]; row 1: [0.6, 0.2] -> [3/4, 1/4]
    q = aligned(p, torch.tensor([0.5, 0.5]), torch.tensor([0.75, 0.25]))
    assert torch.allclose(q, torch.tensor([[1 / 3, 2 / 3], [0.75, 0.25]]))


def test_with_alignment_the_target_is_the_labels_class_shares(cache, name):
    rows = [i for i in TRAIN if i % 2][:9] + [i for i in TRAIN if not i % 2][:3]  # 9 of class 1, 3 of class 0
    m = semi_learner(pool_of(cache), name, "model.align=true")
    m.fit(split(cache, rows), None, seed=0)
    assert torch.equal(m.module.prior, torch.tensor([0.25, 0.75]))
    assert not torch.equal(m.module.running, m.module.prior)  # the running mean followed the predictions


def test_cutout_erases_one_square_per_image():
    torch.manual_seed(0)
    out = cutout(torch.ones(64, 1, 16, 16), 0.25)  # a 4 x 4 square, partly outside the image at the border
    erased = (out == 0).sum(dim=(1, 2, 3))
    assert erased.min() >= 4 and erased.max() == 16
    assert torch.all((out == 0).any(dim=2).sum(dim=(1, 2)) <= 4)  # at most 4 columns touched per image


def test_a_campaign_with_the_semi_supervised_learner(tmp_path, shared_data, caplog):
    """The context hands the training pool to model=semi: rounds train on it and predict the pool."""
    with caplog.at_level(logging.INFO, logger="bpsrun"):
        run_in_process("round=2", "model=semi", "model.image_size=32", "campaign=semi", outputs=tmp_path,
                       data=shared_data)  # fmt: skip
    assert not [r for r in caplog.records if r.getMessage().startswith("model=semi:")]  # both classes, a pool left
    for r in (1, 2):
        history = (tmp_path / "semi" / f"round_{r}" / "metrics.json").read_text()
        assert "train/unlabeled_loss" in history
