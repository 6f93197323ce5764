"""`bpsrun pretrain`: SimCLR trained once on an image folder, reused by campaigns through embedding.checkpoint, the
guard that refuses a checkpoint for other inputs, and resuming a killed pretraining from its last epoch."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from bpsrun.campaign import Campaign
from bpsrun.data.synthetic import SyntheticSpec, generate
from bpsrun.embed import selfsup
from bpsrun.embed.pretrain import pretrain, state_dir
from bpsrun.errors import BpsrunError
from bpsrun.reference import reference_dir
from tests.conftest import REPO, compose_config, run_in_process

TINY = ["embedding.image_size=32", "embedding.epochs=2"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """A folder of 30 synthetic TIFFs (and the generator's CSVs, which pretraining ignores)."""
    return generate(SyntheticSpec(num_images=30, seed=7), tmp_path_factory.mktemp("archive") / "synthetic") / "images"


@pytest.fixture(scope="module")
def backbone(archive, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pretrained") / "simclr.pt"
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("pretrain", overrides=[f"images={archive}", f"out={out}", *TINY])
    return pretrain(cfg)


def test_the_pretrained_file_says_what_it_was_trained_on(backbone):
    saved = torch.load(backbone, weights_only=True)
    assert {k: saved[k] for k in ("format", "method", "image_size", "in_channels", "width", "epochs", "images")} == {
        "format": selfsup.FORMAT, "method": "vicreg", "image_size": 32, "in_channels": 1, "width": 16, "epochs": 2,
        "images": 30,
    }  # fmt: skip
    assert set(saved["state_dict"]) == set(selfsup.ssl_backbone(16).state_dict())
    assert not state_dir(backbone).exists()  # the training state goes once the file is written


def test_campaigns_reuse_the_checkpoint_without_training(backbone, tmp_path, shared_data, monkeypatch, caplog):
    def no_training(*args, **kwargs):
        raise AssertionError("SimCLR trained despite embedding.checkpoint")

    monkeypatch.setattr(selfsup, "train_ssl", no_training)
    caplog.set_level(logging.INFO, logger="bpsrun")
    for name, seed in (("a", 0), ("b", 1)):
        run_in_process(f"campaign={name}", f"seed={seed}", f"embedding.checkpoint={backbone}", outputs=tmp_path,
                       data=shared_data)  # fmt: skip
    a, b = (np.load(tmp_path / name / "embeddings" / "ssl.npy") for name in "ab")
    assert np.array_equal(a, b) and a.shape[1] == 64
    assert "with the pretrained backbone" in caplog.text and "with VICReg" not in caplog.text
    net = selfsup.ssl_backbone(16)
    net.load_state_dict(torch.load(tmp_path / "a" / "embeddings" / "ssl.pt", weights_only=True))
    saved = torch.load(backbone, weights_only=True)["state_dict"]
    assert all(torch.equal(v, saved[k]) for k, v in net.state_dict().items())  # the campaign keeps the same network


def test_full_supervision_is_keyed_by_the_checkpoints_bytes_not_its_path(backbone, tmp_path):
    """A backbone pretrained again at the same path is another embedding: its probe's ceiling is trained anew."""
    first, copy = tmp_path / "backbone.pt", tmp_path / "elsewhere" / "backbone.pt"
    copy.parent.mkdir()
    for path in (first, copy):
        path.write_bytes(backbone.read_bytes())

    def ceiling(path: Path) -> Path:
        return reference_dir(compose_config("model=linear_probe", f"embedding.checkpoint={path}", outputs=tmp_path))

    assert ceiling(first) == ceiling(copy)  # same bytes elsewhere: the same model
    saved = torch.load(backbone, weights_only=True)
    torch.save({**saved, "epochs": saved["epochs"] + 1}, first)  # pretrained again, same path
    assert ceiling(first) != ceiling(copy)


@pytest.mark.parametrize(
    "override, message",
    [
        ("embedding.image_size=48", r"image_size 32 but embedding.image_size=48"),
        ("embedding.width=8", r"width 16 but embedding.width=8"),
    ],
)
def test_a_checkpoint_for_other_inputs_is_refused_before_any_write(backbone, tmp_path, shared_data, override, message):
    cfg = compose_config("campaign=refused", f"embedding.checkpoint={backbone}", override, outputs=tmp_path,
                         data=shared_data)  # fmt: skip
    with pytest.raises(BpsrunError, match=message) as exc:
        Campaign(cfg).run()
    assert "\n" not in str(exc.value) and str(backbone) in str(exc.value)
    assert not (tmp_path / "refused").exists()


def test_a_checkpoint_of_other_channels_or_format_is_refused(backbone, tmp_path):
    saved = torch.load(backbone, weights_only=True)
    torch.save({**saved, "in_channels": 3}, tmp_path / "rgb.pt")
    with pytest.raises(BpsrunError, match=r"rgb.pt: pretrained with in_channels 3 but embedding.in_channels=1"):
        selfsup.read_pretrained(str(tmp_path / "rgb.pt"), 32, 16)
    torch.save(saved["state_dict"], tmp_path / "bare.pt")  # a campaign's embeddings/ssl.pt is no such file
    with pytest.raises(BpsrunError, match=rf"bare.pt: not a {selfsup.FORMAT} file; pass embedding.checkpoint"):
        selfsup.read_pretrained(str(tmp_path / "bare.pt"), 32, 16)


def test_a_missing_or_unreadable_checkpoint_is_named(tmp_path, shared_data):
    missing, garbage = tmp_path / "nowhere.pt", tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    for path, says in ((missing, "no such file"), (garbage, "not readable")):
        cfg = compose_config("campaign=refused", f"embedding.checkpoint={path}", outputs=tmp_path, data=shared_data)
        with pytest.raises(BpsrunError, match=f"embedding.checkpoint={path}: {says}.*bpsrun pretrain") as exc:
            Campaign(cfg).run()
        assert "\n" not in str(exc.value)
    assert not (tmp_path / "refused").exists()


def test_a_registered_backbone_is_found_by_its_models_uri(archive, backbone, tmp_path):
    store, out = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "registered.pt"
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        overrides = [f"images={archive}", f"out={out}", *TINY, "register=archive", f"embedding.tracking_uri='{store}'"]
        pretrain(compose("pretrain", overrides=overrides))
    digest = selfsup.read_pretrained(str(out), 32, 16).digest
    for uri in ("models:/archive/1", "models:/archive@latest"):
        assert selfsup.read_pretrained(uri, 32, 16, store).digest == digest  # the cache key: the same file, anywhere
    with pytest.raises(BpsrunError, match=r"models:/other/1: no such model in sqlite:.*; check the name") as exc:
        selfsup.read_pretrained("models:/other/1", 32, 16, store)
    assert "\n" not in str(exc.value)


def pretrain_command(archive: Path, out: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "bpsrun", "pretrain", f"images={archive}", f"out={out}", *TINY,
            f"hydra.run.dir={out.parent / 'hydra'}"]  # fmt: skip
    return subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}
    )


@pytest.mark.slow
def test_a_killed_pretraining_resumes_from_its_last_epoch(archive, tmp_path):
    out = tmp_path / "simclr.pt"
    # 30 images are one batch: the second training step is the second epoch's, after the first one's checkpoint
    killed = pretrain_command(archive, out, {"BPSRUN_KILL_AT": "embedding:2"})
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert (state_dir(out) / "last.ckpt").exists() and not out.exists()
    again = pretrain_command(archive, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "pretraining resumed: 1 of 2 epochs done" in again.stdout + again.stderr
    assert torch.load(out, weights_only=True)["epochs"] == 2 and not state_dir(out).exists()


@pytest.mark.slow
def test_the_command_refuses_a_folder_without_images(tmp_path):
    proc = pretrain_command(tmp_path, tmp_path / "simclr.pt")
    assert proc.returncode == 2 and f"bpsrun: error: {tmp_path}: no images" in proc.stderr
