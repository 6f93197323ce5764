"""The synthetic generator, image reading, meta.csv parsing and the grouped, stratified split."""

import csv
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile

import bpsrun.data.pool as pool_module
from bpsrun.data import images
from bpsrun.data.images import load_array, load_tensor, percentiles, read_image
from bpsrun.data.manifest import BPS_NAME, SplitSpec, group_key, read_meta, split
from bpsrun.data.pool import PoolStack
from bpsrun.data.synthetic import SyntheticSpec, generate
from bpsrun.errors import BpsrunError


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate(SyntheticSpec(num_images=120, seed=5), tmp_path_factory.mktemp("d") / "synthetic")


def test_synthetic_images_look_like_bps(synth):
    rows = list(csv.DictReader(open(synth / "meta.csv")))
    assert list(rows[0]) == ["filename", "dose_Gy", "particle_type", "hr_post_exposure"]
    assert len(rows) == 120 and len({r["filename"] for r in rows}) == 120
    for r in rows[:20]:
        assert BPS_NAME.match(r["filename"])
        with tifffile.TiffFile(synth / "images" / r["filename"]) as tif:
            page = tif.pages[0]
            assert page.compression == 8  # Adobe Deflate
            img = page.asarray()
        assert img.dtype == np.uint16 and img.ndim == 2
        assert 100 <= min(img.shape) and max(img.shape) <= 180
        assert 200 < np.median(img) < 900 and img.max() < 4000
    assert {r["particle_type"] for r in rows} == {"Fe", "X-ray"}


def test_truth_is_separate_and_tracks_are_rarer(synth):
    truth = list(csv.DictReader(open(synth / "truth.csv")))
    counts = Counter(r["label"] for r in truth)
    assert set(counts) == {"track", "no track"}
    assert 0.1 < counts["track"] / len(truth) < 0.45
    meta = {r["filename"]: r for r in csv.DictReader(open(synth / "meta.csv"))}
    # the class is what the image shows, not the condition: both particles have tracks (tests/test_synthetic.py)
    assert {meta[r["filename"]]["particle_type"] for r in truth if r["label"] == "track"} == {"Fe", "X-ray"}


def test_generator_is_deterministic(synth, tmp_path):
    again = generate(SyntheticSpec(num_images=120, seed=5), tmp_path / "again")
    assert (again / "meta.csv").read_bytes() == (synth / "meta.csv").read_bytes()
    name = next(csv.DictReader(open(synth / "meta.csv")))["filename"]
    assert (tifffile.imread(again / "images" / name) == tifffile.imread(synth / "images" / name)).all()


def test_normalised_input_shape_and_range(synth):
    name = next(csv.DictReader(open(synth / "meta.csv")))["filename"]
    x = load_tensor(synth / "images" / name, 48)
    assert x.shape == (48, 48) and x.dtype == np.float32
    assert -0.5 <= x.min() and x.max() <= 2.0 and x.max() > 0.5


def test_corrupt_and_wrong_images_name_the_file(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(BpsrunError, match="bad.tif: not a readable image"):
        read_image(tmp_path / "bad.tif")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((10, 10, 3), np.uint16))
    with pytest.raises(BpsrunError, match="rgb.tif: expected one channel"):
        read_image(tmp_path / "rgb.tif")
    tifffile.imwrite(tmp_path / "float.tif", np.zeros((10, 10), np.float32))
    with pytest.raises(BpsrunError, match="float.tif: expected 8- or 16-bit"):
        read_image(tmp_path / "float.tif")


def test_meta_csv_problems_name_the_row(tmp_path):
    p = tmp_path / "meta.csv"
    p.write_text("name,dose\na.tif,1\n")
    with pytest.raises(BpsrunError, match="first column must be 'filename'"):
        read_meta(p)
    p.write_text("filename,dose\na.tif,1\na.tif,2\n")
    with pytest.raises(BpsrunError, match=r"meta.csv:3: duplicate filename 'a.tif'"):
        read_meta(p)


def rows_for(plates: int, wells: int, per_well: int) -> list[dict[str, str]]:
    rows = []
    for p in range(plates):
        for w in range(wells):
            for k in range(per_well):
                particle = "Fe" if p % 2 == 0 else "X-ray"
                rows.append({"filename": f"P{240 + p}_123-A{w + 1}_001_{k:03d}_proj.tif", "particle_type": particle})
    return rows


def test_split_is_stratified():
    rows = rows_for(4, 5, 10)  # 100 Fe, 100 X-ray
    parts = split(rows, SplitSpec(val_size=0.2, stratify_by="particle_type"))
    for particle in ("Fe", "X-ray"):
        assert sum(p == "val" for p, r in zip(parts, rows) if r["particle_type"] == particle) == 20


@pytest.mark.parametrize("group_by", ["well", "plate"])
def test_grouped_split_keeps_groups_whole(group_by):
    rows = rows_for(6, 5, 4)
    parts = split(rows, SplitSpec(val_size=0.3, group_by=group_by, stratify_by="particle_type"))
    sides: dict[str, set[str]] = {}
    for part, row in zip(parts, rows):
        sides.setdefault(group_key(row["filename"], group_by), set()).add(part)
    assert all(len(s) == 1 for s in sides.values())
    assert "val" in parts and "train" in parts
    for particle in ("Fe", "X-ray"):
        assert any(p == "train" for p, r in zip(parts, rows) if r["particle_type"] == particle)


def test_group_by_needs_bps_names():
    with pytest.raises(BpsrunError, match="split.group_by=well needs BPS file names"):
        split([{"filename": "cell1.png"}], SplitSpec(group_by="well"))


def test_histogram_percentiles_equal_numpys():
    rng = np.random.default_rng(0)
    for img in (rng.integers(200, 3000, (37, 53), dtype=np.uint16), np.full((4, 4), 7, np.uint8)):
        q = (0.5, 1.0, 50.0, 99.8)
        assert np.array_equal(percentiles(img, q), np.percentile(img, q))


def test_fused_resize_equals_padding_then_torch_antialiased_interpolation(synth):
    """The straightforward path: normalise, pad to a square with the background, torch bilinear antialias."""
    import torch
    import torch.nn.functional as F

    for row in list(csv.DictReader(open(synth / "meta.csv")))[:10]:
        img = read_image(synth / "images" / row["filename"])
        lo, hi = np.percentile(img, (0.5, 99.8))
        norm = np.clip((img.astype(np.float32) - lo) / max(hi - lo, 1.0), -0.5, 2.0)
        h, w = norm.shape
        side = max(h, w)
        square = np.full((side, side), np.percentile(norm, 1), dtype=np.float32)
        square[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = norm
        for size in (48, 96, 200):  # shrinking and enlarging
            expected = F.interpolate(torch.from_numpy(square)[None, None], size=(size, size), mode="bilinear",
                                     antialias=True, align_corners=False)[0, 0].numpy()  # fmt: skip
            assert np.abs(load_array(img, size) - expected).max() < 1e-4


def test_multi_page_and_huge_tiffs_are_refused_naming_the_file(tmp_path):
    """A multi-page TIFF no longer silently gives its first page; a huge one is refused from its header, before
    its pixels are decoded (a 20000 x 20000 image used to take 4.8 GB)."""
    stack = tmp_path / "stack.tif"
    with tifffile.TiffWriter(stack) as tif:
        tif.write(np.zeros((8, 8), np.uint16))
        tif.write(np.ones((6, 6), np.uint16))  # a second image of another shape: series 0 would be page 1 alone
    with pytest.raises(BpsrunError, match=r"stack.tif: a TIFF of 2 pages; .*save the page you mean"):
        read_image(stack)
    huge = tmp_path / "huge.tif"
    side = 8193
    with tifffile.TiffWriter(huge) as tif:  # tiles of zeros compress to almost nothing: a small file
        tif.write(np.zeros((side, side), np.uint8), tile=(1024, 1024), compression="zlib")
    assert huge.stat().st_size < 5_000_000
    with pytest.raises(BpsrunError, match=rf"huge.tif: {side} x {side} pixels, more than bpsrun reads"):
        read_image(huge)


def test_the_image_cache_is_written_in_chunks_and_equals_the_in_memory_stack(synth, tmp_path, monkeypatch):
    paths = sorted((synth / "images").iterdir())[:23]
    monkeypatch.setattr(images, "STACK_CHUNK", 5)  # several chunks and a short last one
    with open(tmp_path / "stack.npy", "wb") as f:
        images.write_stack(paths, 40, f)
    assert np.array_equal(np.load(tmp_path / "stack.npy"), images.load_stack(paths, 40))


def test_a_pool_stack_reads_rows_and_chunks_in_pool_order(monkeypatch, tmp_path):
    stack = np.arange(10 * 4, dtype=np.float16).reshape(10, 1, 2, 2)
    np.save(tmp_path / "cache.npy", stack)
    pool = PoolStack(tmp_path / "cache.npy", [1, 2, 4, 7, 8, 9])
    monkeypatch.setattr(pool_module, "CHUNK", 4)
    assert [len(c) for c in pool.chunks()] == [4, 2] and pool.shape == (6, 1, 2, 2)
    assert np.array_equal(np.asarray(pool), stack[[1, 2, 4, 7, 8, 9]])
    assert np.array_equal(pool[[0, 5]], stack[[1, 9]])
    sums = pool.map(lambda x: x.reshape(len(x), -1).sum(axis=1))  # one value per image, joined in order
    assert sums.tolist() == stack[[1, 2, 4, 7, 8, 9]].reshape(6, -1).sum(axis=1).tolist()


def resident_file_mib() -> float:
    """This process's file-backed resident memory (Linux): mapped pages it has touched."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("RssFile:"))
    return int(line.split()[1]) / 1024


def test_reading_a_pool_stack_end_to_end_keeps_a_bounded_part_of_the_cache_resident(monkeypatch, tmp_path):
    images = np.random.default_rng(0).random((2048, 1, 128, 128)).astype(np.float16)  # 64 MiB
    np.save(tmp_path / "cache.npy", images)
    monkeypatch.setattr(pool_module, "CHUNK", 256)  # 8 MiB chunks
    monkeypatch.setattr(pool_module, "REMAP_BYTES", 16 * 2**20)

    def growth(read_all) -> float:
        start, peak = resident_file_mib(), 0.0
        for _ in read_all():
            peak = max(peak, resident_file_mib() - start)
        return peak

    mapped = np.load(tmp_path / "cache.npy", mmap_mode="r")  # one mapping read end to end: the control
    plain = growth(lambda: (np.array(mapped[i : i + 256]) for i in range(0, 2048, 256)))
    pool = PoolStack(tmp_path / "cache.npy", list(range(2048)))
    streamed = growth(pool.chunks)
    assert plain > 48 and streamed < 24, (plain, streamed)
    copy = pickle.loads(pickle.dumps(pool))  # DDP's spawned ranks get the path and rows, not the pixels
    assert len(pickle.dumps(pool)) < 20_000 and np.array_equal(copy[[5, 2047]], images[[5, 2047]])
