"""Hydra multirun of several strategies over one pool; bring-your-own folders. (Every strategy x seed being its own
campaign: tests/test_report.py and tests/test_launchers.py.)"""

import shutil

import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.conftest import run_command

pytestmark = pytest.mark.slow  # whole campaigns of the command, real servers


def test_balanced_hybrid_typiclust_and_bald_presets_run_end_to_end(tmp_path):
    # own data folder: the shared one may already hold these embeddings from another test
    run_command("-m", "selection=bps_balanced,hybrid,typiclust,bald", "round=2", outputs=tmp_path, data=tmp_path / "d")
    mc = np.load(tmp_path / "synthetic-bald-s0" / "round_1" / "mc_probs.npy")
    assert mc.shape[0] == 10 and mc.shape[2] == 2 and not np.allclose(mc[0], mc[1])
    names = ("bps_balanced", "hybrid", "typiclust", "bald")
    for name in names:
        assert len((tmp_path / f"synthetic-{name}-s0" / "round_2" / "selected.txt").read_text().splitlines()) == 8
    manifest = (tmp_path / "synthetic-bps_balanced-s0" / "manifest.csv").read_text().splitlines()
    particle = {line.split(",")[0]: line.split(",")[4] for line in manifest[1:]}
    picks = (tmp_path / "synthetic-bps_balanced-s0" / "round_1" / "selected.txt").read_text().split()
    assert sorted(particle[f] for f in picks) == ["Fe"] * 4 + ["X-ray"] * 4
    # four strategies, one pool and seed: SimCLR trained once, every campaign holds the same embeddings
    logs = "".join(p.read_text() for p in (tmp_path / "multirun").rglob("__main__.log"))
    assert logs.count("with VICReg (once per pool and seed)") == 1
    embeddings = {(tmp_path / f"synthetic-{n}-s0" / "embeddings" / "ssl.npy").read_bytes() for n in names}
    assert len(embeddings) == 1


def test_folder_dataset_with_png_and_tiff(tmp_path, shared_data):
    """Bring-your-own data: a folder of PNG and TIFF images with meta.csv, truth from dataset.truth_csv."""
    run_command("round=1", "selection=random", outputs=tmp_path / "gen", data=shared_data)
    source = shared_data / "synthetic-n60-s1234-binary"
    folder = tmp_path / "mine"
    folder.mkdir()
    meta = (source / "meta.csv").read_text().splitlines()
    truth = (source / "truth.csv").read_text().splitlines()
    for k, line in enumerate(meta[1:]):
        name = line.split(",")[0]
        if k % 2:  # every other image as an 8-bit PNG
            img = tifffile.imread(source / "images" / name)
            png = name.replace(".tif", ".png")
            Image.fromarray((img // 16).astype(np.uint8)).save(folder / png)
            meta[k + 1] = line.replace(name, png)
            truth[k + 1] = truth[k + 1].replace(name, png)
        else:
            shutil.copy(source / "images" / name, folder / name)
    (folder / "meta.csv").write_text("\n".join(meta) + "\n")
    (tmp_path / "truth.csv").write_text("\n".join(truth) + "\n")
    out = tmp_path / "out"
    args = ("dataset=folder", f"dataset.path={folder}", "round=1", "selection=random")
    proc = run_command(*args, outputs=out, check=False)
    assert proc.returncode == 2 and "labeling=oracle needs ground truth; set dataset.truth_csv" in proc.stderr
    run_command(*args, f"dataset.truth_csv={tmp_path / 'truth.csv'}", outputs=out)
    selected = (out / "folder-random-s0" / "round_1" / "selected.txt").read_text().splitlines()
    assert len(selected) == 8 and any(f.endswith(".png") for f in [*selected, *meta])


def test_classifier_embedding_uses_the_previous_rounds_model(tmp_path, shared_data):
    run_command("selection=diversity", "embedding=classifier", "round=2", outputs=tmp_path, data=shared_data)
    root = tmp_path / "synthetic-diversity-s0"
    feats = np.load(root / "round_1" / "embeddings-classifier.npy")
    pool = sum(1 for line in (root / "manifest.csv").read_text().splitlines()[1:] if ",train," in line)
    assert feats.shape == (pool, 64)  # small_cnn's pooled features: 4 x width 16
    assert (root / "embeddings" / "ssl.npy").exists()  # round 1's cold start
