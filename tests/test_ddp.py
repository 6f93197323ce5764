"""Several devices (trainer=ddp: two CPU processes, gloo, spawned): predictions of every image once and in order,
the learner's history and exact validation metrics, and the refusal of strategies that re-run the command."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader, TensorDataset

from bpsrun.checks import check_config
from bpsrun.errors import BpsrunError
from bpsrun.model.gather import merge, predict_all
from bpsrun.model.trainers import Trainers
from bpsrun.plugins import build
from tests.conftest import REPO, TINY, compose_config

CONF = Path(__file__).resolve().parents[1] / "conf"
SHORT = ["trainer.max_epochs=2", "trainer.min_samples_per_epoch=16", "trainer.eval_batch_size=4"]


def config(*overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=[*SHORT, *overrides])


class Doubling(pl.LightningModule):
    """Predicts 2 x + 1 of each input (a sample's prediction names the sample); each rank writes the torch thread
    count it predicted with into `threads`, when given."""

    def __init__(self, threads: Path | None = None):
        super().__init__()
        self.threads = threads

    def predict_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.threads is not None:
            (self.threads / f"rank{self.global_rank}").write_text(str(torch.get_num_threads()))
        return 2 * batch[0] + 1


@pytest.mark.slow  # two spawned ranks
def test_predict_all_gathers_every_sample_once_in_order_on_the_configured_threads(tmp_path):
    """37 samples in batches of 4 over two ranks: shards of 19 and 18 samples, merged back into 0..36.

    A spawned rank is a fresh interpreter; it must run with this process's threads (trainer.threads, which change
    the floats): 3 here, neither Lightning's share of the cores (cores // processes) nor torch's default."""
    loader = DataLoader(TensorDataset(torch.arange(37.0)[:, None]), batch_size=4)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        ddp = Trainers(config("trainer=ddp").trainer).trainer(enable_progress_bar=False)
        assert ddp.world_size == 2
        gathered = predict_all(ddp, Doubling(tmp_path), loader)
    finally:
        torch.set_num_threads(before)
    single = Trainers(config().trainer).trainer(enable_progress_bar=False)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {"rank0": "3", "rank1": "3"}
    assert torch.equal(gathered, predict_all(single, Doubling(), loader))
    assert torch.equal(gathered[:, 0], 2 * torch.arange(37.0) + 1)


def shard(folder: Path, rank: int, index: list[int]) -> None:
    torch.save({"index": torch.tensor(index), "values": torch.tensor(index) * 10.0}, folder / f"rank{rank}.pt")


def test_merge_drops_padding_and_refuses_gaps(tmp_path):
    shard(tmp_path, 0, [0, 2, 4])
    shard(tmp_path, 1, [1, 3, 0])  # a padding sampler repeats sample 0 to even the shards
    assert merge(tmp_path, 2, 5).tolist() == [0, 10, 20, 30, 40]
    with pytest.raises(BpsrunError, match="covered 5 of 6 samples"):
        merge(tmp_path, 2, 6)
    with pytest.raises(BpsrunError, match="rank 2 wrote no predictions"):
        merge(tmp_path, 3, 5)


def learner(*overrides: str):
    cfg = config("model.image_size=32", *overrides)
    return build(cfg.model, "model", num_classes=2, trainers=Trainers(cfg.trainer))


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bright images are class 1: a signal two epochs can learn."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return (rng.normal(size=(n, 1, 32, 32)) + 1.5 * y[:, None, None, None]).astype(np.float32), y


@pytest.mark.slow  # five Trainer runs of two spawned processes: about 30 s on 2 cores
def test_a_learner_on_two_processes():
    """Trained on two ranks, the learner keeps its history, predicts all 37 pool images in order (the same as one
    process with its weights, to float rounding) and scores validation exactly as one process does.

    Trained separately, one and two processes are two optimisations (each rank draws half of every epoch, the
    gradients are averaged), so their accuracies agree only as two seeds do: both learn the signal, within 0.15."""
    train, val, (pool, _) = images(16, 0), images(21, 1), images(37, 2)
    ddp, single = learner("trainer=ddp"), learner()
    history = ddp.fit(train, val, seed=0)
    assert [row["epoch"] for row in history] == [0, 1] and all("val/accuracy" in row for row in history)
    assert len(history) == len(single.fit(train, val, seed=0))

    probs = ddp.predict_proba(pool)
    alone = learner()  # the DDP-trained weights, run in this process
    alone.module = ddp.module
    assert probs.shape == (37, 2)
    np.testing.assert_allclose(probs, alone.predict_proba(pool), rtol=0, atol=1e-6)
    scores = ddp.evaluate(val)
    assert scores == alone.evaluate(val) and sum(map(sum, scores["confusion"])) == 21
    apart = single.evaluate(val)["val_accuracy"]
    assert abs(scores["val_accuracy"] - apart) <= 0.15 and min(scores["val_accuracy"], apart) >= 0.7

    mc = ddp.mc_proba(pool[:9], passes=2, seed=0)  # each pass and rank draws its own dropout masks
    assert mc.shape == (2, 9, 2) and not np.allclose(mc[0], mc[1])


REFUSED = {
    "ddp": (("trainer.strategy=ddp", "trainer.devices=2"), "trainer.strategy='ddp'"),
    "auto": (("trainer.devices=2",), "trainer.strategy='auto'"),
    "lightning key": (
        ("trainer.lightning.strategy=ddp_find_unused_parameters_true", "trainer.devices=2"),
        "trainer.lightning.strategy='ddp_find_unused_parameters_true'",
    ),
    "ddp choice, plain strategy": (("trainer=ddp", "trainer.strategy=ddp"), "trainer.strategy='ddp'"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_strategy_that_reruns_the_command_is_refused_in_one_line(case, tmp_path):
    overrides, needle = REFUSED[case]
    with pytest.raises(BpsrunError) as refused:
        check_config(compose_config(*overrides, outputs=tmp_path / "out"))
    message = str(refused.value)
    assert needle in message and "trainer=ddp" in message and "\n" not in message


@pytest.mark.parametrize(
    "overrides", [("trainer=ddp",), ("trainer.strategy=ddp",), ("trainer.strategy=ddp_spawn", "trainer.devices=2")]
)
def test_spawning_or_single_process_strategies_pass(overrides, tmp_path):
    check_config(compose_config(*overrides, outputs=tmp_path / "out"))


@pytest.mark.slow
def test_a_campaign_on_two_processes_predicts_every_pool_image(tmp_path, shared_data):
    tiny = ["dataset.num_images=60", *(o for o in TINY if not o.startswith("embedding."))]  # pixels: no SimCLR keys
    command = [sys.executable, "-m", "bpsrun", "round=1", "trainer=ddp", "embedding=pixels", *tiny,
               f"paths.outputs={tmp_path}", f"paths.data={shared_data}"]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = tmp_path / "synthetic-active-s0"
    pool = [r["file"] for r in csv.DictReader(open(root / "manifest.csv")) if r["split"] == "train"]
    preds = root / "round_1" / "lightly" / ".lightly" / "predictions" / "bps-classification"
    written = sorted(str(p.relative_to(preds)) for p in preds.rglob("*.json") if p.name != "schema.json")
    assert written == sorted(str(Path(f).with_suffix(".json")) for f in pool)
    metrics = json.loads((root / "round_1" / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and sum(map(sum, metrics["confusion"])) > 0
