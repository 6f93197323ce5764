"""Learners that build on the embedding's network (model=linear_probe, model=finetune), the SimCLR backbone they get
through the context's encoder, and how plugins hands such optional runtime parts only to targets that take them."""

from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import nn

from bpsrun.data.pool import PoolStack
from bpsrun.embed import selfsup
from bpsrun.embed.base import EmbedContext
from bpsrun.embed.encoder import Encoder
from bpsrun.errors import BpsrunError
from bpsrun.layout import Layout
from bpsrun.model.trainers import Trainers
from bpsrun.plugins import build
from tests.conftest import run_in_process

CONF = Path(__file__).resolve().parents[1] / "conf"
SHORT = ["trainer.max_epochs=3", "trainer.min_samples_per_epoch=32", "trainer.eval_batch_size=16"]
SIZE = 16


def config(*overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=[*SHORT, f"embedding.image_size={SIZE}", *overrides])


class Counting(nn.Module):
    """A fixed toy backbone (4 x 4 mean pooling: 16 features) that counts the images it has encoded."""

    def __init__(self):
        super().__init__()
        self.pool = nn.Sequential(nn.AvgPool2d(4), nn.Flatten())
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        return self.pool(x)


class ToyBackbone:
    """A Backbone source, as an embedding would be."""

    image_size = SIZE

    def __init__(self, net: nn.Module):
        self.net = net

    def backbone(self) -> nn.Module:
        return self.net


def toy_encoder(trainers: Trainers, net: nn.Module | None = None) -> Encoder:
    return Encoder(lambda: ToyBackbone(net or Counting()), trainers)


def learner(model: str, encoder: Encoder | None = None, *overrides: str):
    epochs = ["model.max_epochs=20"] if model == "linear_probe" else []  # its own epochs: 50 by default
    cfg = config(f"model={model}", *epochs, *overrides)
    trainers = Trainers(cfg.trainer)
    return build(cfg.model, "model", {"encoder": encoder or toy_encoder(trainers)}, num_classes=2, trainers=trainers)


def toy_problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise images; class 0 has a bright top-left quadrant: linearly separable in the toy backbone's features."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.5, size=(n, 1, SIZE, SIZE)).astype(np.float16)
    y = np.arange(n) % 2
    x[y == 0, :, :8, :8] += np.float16(0.4)
    return x, y


def test_linear_probe_is_deterministic_and_learns():
    train, val = toy_problem(24, 0), toy_problem(64, 1)
    a, b = learner("linear_probe"), learner("linear_probe")
    history = a.fit(train, val, seed=5)
    b.fit(train, val, seed=5)
    sa, sb = a.head.module.state_dict(), b.head.module.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert np.array_equal(a.predict_proba(val[0]), b.predict_proba(val[0]))
    assert len(history) == 20 and "val/accuracy" in history[-1]
    scores = a.evaluate(val)
    assert scores["val_accuracy"] >= 0.95 and sum(map(sum, scores["confusion"])) == 64


def test_linear_probe_predicts_in_order_saves_and_loads(tmp_path):
    cfg = config("model=linear_probe")
    trainers = Trainers(cfg.trainer)
    net = Counting()
    encoder = toy_encoder(trainers, net)
    m = learner("linear_probe", encoder)
    x, y = toy_problem(40, 2)
    m.fit((x[:20], y[:20]), (x[20:], y[20:]), seed=0)
    assert net.seen == 40  # the frozen network ran once per image, and no more below
    probs = m.predict_proba(x)
    assert probs.shape == (40, 2) and probs.dtype == np.float64 and np.allclose(probs.sum(axis=1), 1.0)
    order = np.random.default_rng(0).permutation(40)
    assert np.allclose(m.predict_proba(x[order]), probs[order], atol=1e-6)  # one row per image, in input order
    features = m.features(x)
    assert features.shape == (40, 16) and features.dtype == np.float32
    assert np.allclose(features, x.astype(np.float32).reshape(40, 4, 4, 4, 4).mean(axis=(2, 4)).reshape(40, 16))
    assert net.seen == 40
    m.save(tmp_path / "model.pt")
    loaded = learner("linear_probe", encoder)
    loaded.load(tmp_path / "model.pt")
    assert np.array_equal(loaded.predict_proba(x), probs)
    with pytest.raises(BpsrunError, match="uncertainty_bald needs a model with dropout"):
        m.mc_proba(x, passes=2, seed=0)


def test_linear_probe_mlp_with_dropout_has_monte_carlo_passes():
    m = learner("linear_probe", None, "model.net.hidden=8", "model.net.dropout=0.3")
    x, y = toy_problem(24, 3)
    m.fit((x, y), (x, y), seed=0)
    mc = m.mc_proba(x, passes=3, seed=0)
    assert mc.shape == (3, 24, 2) and not np.allclose(mc[0], mc[1])
    assert np.array_equal(mc, m.mc_proba(x, passes=3, seed=0))


def test_a_model_on_the_embedding_refuses_another_image_size():
    with pytest.raises(BpsrunError, match=r"model.image_size=24.*embedding.image_size=16"):
        learner("linear_probe", None, "model.image_size=24")


def test_finetune_trains_the_backbone_copy_and_predicts():
    cfg = config("model=finetune")
    trainers = Trainers(cfg.trainer)
    backbone = selfsup.ssl_backbone(width=4)
    start = {k: v.clone() for k, v in backbone.state_dict().items()}
    m = learner("finetune", Encoder(lambda: ToyBackbone(backbone), trainers))
    x, y = toy_problem(16, 4)
    history = m.fit((x, y), (x, y), seed=0)
    assert len(history) == 3
    groups = m.module.trainer.optimizers[0].param_groups  # the backbone learns 10x slower than the head
    assert [g.get("lr_scale", 1.0) for g in groups] == [0.1, 1.0]
    tuned = m.module.net.features.state_dict()
    assert any(not torch.equal(tuned[k], start[k]) for k in start)  # fine-tuned end to end
    assert all(torch.equal(backbone.state_dict()[k], start[k]) for k in start)  # the embedding's network is intact
    probs = m.predict_proba(x)
    assert probs.shape == (16, 2) and np.allclose(probs.sum(axis=1), 1.0)
    assert m.features(x).shape == (16, 16)


def embed_context(tmp_path: Path, campaign: str, images: np.ndarray, trainers: Trainers) -> EmbedContext:
    return EmbedContext(
        Layout(tmp_path / campaign),
        0,
        lambda size: images,
        lambda: {"pool": "toy"},
        tmp_path / "shared",
        trainers,
        None,
    )


def test_the_ssl_embedding_keeps_its_backbone_computed_once_per_pool(tmp_path, monkeypatch):
    cfg = config("embedding.epochs=1", "embedding.width=4", "embedding.batch_size=8")
    trainers = Trainers(cfg.trainer)
    images = toy_problem(16, 5)[0]
    original, trained = selfsup.train_ssl, []

    def counting(*args):
        trained.append(1)
        return original(*args)

    monkeypatch.setattr(selfsup, "train_ssl", counting)

    def part(campaign: str):
        return build(cfg.embedding, "embedding", context=embed_context(tmp_path, campaign, images, trainers))

    first = part("a")
    emb = first.embed(1)
    assert emb.shape == (16, 16) and trained == [1]
    assert sorted(p.suffix for p in (tmp_path / "shared").iterdir()) == [".lock", ".npy", ".pt"]
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "shared").iterdir()}
    layout = Layout(tmp_path / "b")
    second = part("b")  # another campaign over the same pool: copies, does not train
    assert np.array_equal(second.embed(1), emb) and trained == [1]
    assert layout.ssl_backbone.exists() and layout.ssl_embeddings.exists()
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "shared").iterdir()} == stamps
    encoder = Encoder(lambda: part("b"), trainers)  # the learners' view: the same network, frozen
    assert np.allclose(encoder.encode(images), emb, atol=1e-6) and trained == [1]
    assert not any(p.requires_grad for p in encoder.module().parameters())


def test_a_campaigns_embedding_follows_its_settings_but_not_its_numerics(tmp_path, caplog):
    """Its copy is replaced (with a warning) when SimCLR's settings change; another thread count keeps it."""
    images = toy_problem(16, 5)[0]

    def embedded(*overrides: str, numerics: str = "1") -> np.ndarray:
        cfg = config("embedding.width=4", "embedding.batch_size=8", *overrides)
        context = embed_context(tmp_path, "a", images, Trainers(cfg.trainer))
        context.cache_key = lambda: {"pool": "toy", "numerics": numerics}
        return build(cfg.embedding, "embedding", context=context).embed(1)

    first = embedded("embedding.epochs=1")
    key = (tmp_path / "a" / "embeddings" / "ssl.key").read_text()
    assert np.array_equal(embedded("embedding.epochs=1", numerics="2"), first)  # kept, not recomputed
    assert not [r for r in caplog.records if "settings changed" in r.message]
    second = embedded("embedding.epochs=2")
    assert not np.array_equal(second, first)
    assert (tmp_path / "a" / "embeddings" / "ssl.key").read_text() != key
    (warning,) = [r.message for r in caplog.records if "settings changed" in r.message]
    assert "rounds from here on select on the new embedding" in warning


def test_an_embedding_without_a_network_is_named():
    encoder = Encoder(lambda: object(), Trainers(config().trainer))
    with pytest.raises(BpsrunError, match="object has none; use an embedding with one"):
        encoder.module()


def test_pixels_embedding_is_a_pca_and_a_network(tmp_path):
    images = toy_problem(40, 6)[0]
    cfg = config("embedding=pixels", "embedding.components=8")
    trainers = Trainers(cfg.trainer)
    np.save(tmp_path / "cache.npy", images)
    pool = PoolStack(tmp_path / "cache.npy", list(range(40)))
    ctx = EmbedContext(Layout(Path("unused")), 0, lambda size: pool, dict, Path("unused"), trainers, None)
    part = build(cfg.embedding, "embedding", context=ctx)
    with patch("bpsrun.data.pool.CHUNK", 7):  # read in chunks, the pool gives the exact PCA all the same
        emb = part.embed(1)
    flat = images.reshape(40, -1).astype(np.float64)
    _, s, _ = np.linalg.svd(flat - flat.mean(axis=0), full_matrices=False)
    assert emb.shape == (40, 8) and np.allclose(emb.std(axis=0), s[:8] / np.sqrt(40), rtol=1e-4)
    assert np.allclose(Encoder(lambda: part, trainers).encode(images), emb, atol=1e-5)


class Plain:
    def __init__(self, size: int):
        self.size = size


class TakesEncoder(Plain):
    def __init__(self, size: int, encoder: object = None):
        super().__init__(size)
        self.encoder = encoder


class CatchAll(Plain):
    def __init__(self, size: int, **rest: object):
        super().__init__(size)
        self.rest = rest


@pytest.mark.parametrize("target, gets", [(Plain, False), (TakesEncoder, True), (CatchAll, False)])
def test_optional_runtime_parts_go_only_to_targets_that_name_them(target, gets):
    node = OmegaConf.create({"_target_": f"{__name__}.{target.__name__}", "name": "toy"})
    sentinel = object()
    part = build(node, "model", {"encoder": sentinel}, size=3)
    assert isinstance(part, target) and part.size == 3
    assert (getattr(part, "encoder", None) is sentinel) == gets
    assert getattr(part, "rest", {}) == {}


def test_a_campaign_with_the_linear_probe_on_the_ssl_embedding(tmp_path, shared_data):
    """embedding=classifier: round 2 selects on the probe's features, i.e. the frozen self-supervised ones."""
    overrides = ("round=2", "model=linear_probe", "model.image_size=32", "embedding=classifier", "campaign=probe")
    run_in_process(*overrides, outputs=tmp_path, data=shared_data)
    root = tmp_path / "probe"
    assert (root / "embeddings" / "ssl.pt").exists()
    frozen = np.load(root / "embeddings" / "ssl.npy")
    assert np.allclose(np.load(root / "round_1" / "embeddings-classifier.npy"), frozen, atol=1e-5)
    assert (root / "round_2" / "metrics.json").exists()
