"""Progress in a log file (stderr is no terminal under pytest): Lightning's bar becomes plain lines, one per tenth
of the epochs and the last, never carriage-return frames; a step budget says where it stopped."""

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader, TensorDataset

from bpsrun.model.trainers import Trainers
from tests.conftest import REPO


class Line(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(1, 1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.w(x), y)
        self.log("train/loss", loss, on_epoch=True, on_step=False)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(**trainer: int) -> None:
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["trainer.threads=1"])
    x = torch.linspace(0, 1, 8)[:, None]
    Trainers(cfg.trainer).trainer(**trainer).fit(Line(), DataLoader(TensorDataset(x, 2 * x), batch_size=4))


def progress_lines(err: str) -> list[str]:
    assert "\r" not in err
    return [line.split(":")[0] for line in err.splitlines() if line.startswith("Line epoch")]


def test_a_log_gets_a_line_per_tenth_of_the_epochs_and_no_frames(capfd):
    fit(max_epochs=20)
    assert progress_lines(capfd.readouterr().err) == [f"Line epoch {e}/20" for e in range(2, 21, 2)]


def test_a_step_budget_names_the_step_it_stopped_at(capfd):
    fit(max_epochs=20, max_steps=7)  # 2 steps an epoch: stops during epoch 4
    assert progress_lines(capfd.readouterr().err) == ["Line epoch 2, step 4/7", "Line epoch 4, step 7/7"]
