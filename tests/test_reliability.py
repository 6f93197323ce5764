"""Reliability round 2: nothing written outside `paths.outputs`, nothing lost silently, no campaign left stuck.

- one pass over the composed config (bpsrun.checks.check_config) refuses bad values in one line, before any write;
- file names from meta.csv cannot point outside the dataset or collide in Lightly's `<stem>.json`; truth rows once;
- what bpsrun writes follows the umask (mkstemp's 0600 would hide renders from a Label Studio server);
- a full disk leaves the previous file intact, no temporary, and one line naming the path.

Tests marked `wired` need `check_config` called from `Campaign.__init__` and the `check_config` Hydra callback in
conf/config.yaml (see bpsrun/checks.py); the rest test the functions directly.
"""

import contextlib
import csv
import errno
import http.server
import io
import os
import re
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import tifffile

import bpsrun.checks as checks
import bpsrun.files as files
from bpsrun.checks import CheckConfig, check_config
from bpsrun.data.manifest import read_meta
from bpsrun.errors import AwaitingLabels, BpsrunError
from bpsrun.files import DiskFull, atomic_dir, atomic_file, atomic_write_text, cached_npy
from bpsrun.label.oracle import read_truth
from tests.conftest import compose_config, run_command, run_in_process, snapshot

CLASSES = ["track", "no track"]


def check_refused(message: str, *needles: str) -> None:
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert "\n" not in message, message


def refused_config(*overrides: str, outputs: Path) -> str:
    cfg = compose_config(*overrides, outputs=outputs)
    started = time.monotonic()
    with pytest.raises(BpsrunError) as refused:
        check_config(cfg)
    assert time.monotonic() - started < 2, "a config check must be quick"
    return str(refused.value)


# -- 1. the config, checked once before anything is written ----------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIG_CASES = {
    "round true": (("round=true",), ["round=True", "rounds count from 1"]),
    "round float": (("round=1.5",), ["round=1.5", "rounds count from 1"]),
    "round zero": (("round=0",), ["round=0", "rounds count from 1"]),
    "round huge": (("round=100000",), ["round=100000", "at most 1000 rounds"]),
    "seed negative": (("seed=-1",), ["seed=-1", "from 0 to 4294967295"]),
    "seed too big": (("seed=4294967296",), ["seed=4294967296", "from 0 to 4294967295"]),
    "seed bool": (("seed=false",), ["seed=False", "an integer"]),
    "seed text": (("seed=abc",), ["seed='abc'", "an integer"]),
    "val size 0": (("split.val_size=0",), ["split.val_size=0", "an integer of at least 1", "or a fraction"]),
    "val size 1.0": (("split.val_size=1.0",), ["split.val_size=1.0", "strictly between 0 and 1"]),
    "val size negative": (("split.val_size=-0.2",), ["split.val_size=-0.2", "between 0 and 1"]),
    "val size text": (("split.val_size=abc",), ["split.val_size='abc'", "strictly between 0 and 1"]),
    "val labels unknown": (("split.val_labels=human",), ["split.val_labels='human'", "auto, labeler, truth"]),
    "require_val text": (("split.require_val=maybe",), ["split.require_val='maybe'", "true or false"]),
    "n_samples 0": (("selection.n_samples=0",), ["selection.n_samples=0", "at least 1"]),
    "n_samples -1": (("selection.n_samples=-1",), ["selection.n_samples=-1", "at least 1"]),
    "n_samples float": (("selection.n_samples=2.5",), ["selection.n_samples=2.5", "an integer"]),
    "proportion 0": (("+selection.proportion_samples=0",), ["selection.proportion_samples=0", "greater than 0"]),
    "proportion above 1": (("+selection.proportion_samples=1.5",), ["proportion_samples=1.5", "at most 1"]),
    "too few synthetic images": (
        ("dataset.num_images=5",),
        ["dataset.num_images=5", "at least 10 images", "dataset.num_images="],
    ),
    "no epochs": (("trainer.max_epochs=0",), ["trainer.max_epochs=0", "at least 1"]),
    "ddp re-runs": (("trainer.strategy=ddp", "trainer.devices=2"), ["trainer.strategy='ddp'", "trainer=ddp"]),
    "campaign climbs out": (("campaign=../x",), ["campaign='../x'", "not a path", "campaign=my-run"]),
    "campaign is a path": (("campaign=a/b",), ["campaign='a/b'", "paths.outputs=DIR"]),
    "campaign backslash": (("campaign=a\\\\b",), ["campaign=", "not a path"]),
    "campaign dot-dot": (("campaign=..",), ["campaign='..'", "must not start with '.'"]),
    "campaign hidden": (("campaign=.x",), ["campaign='.x'", "must not start with '.'"]),
    "campaign control char": (("campaign=a\tb",), ["campaign=", "control character (U+0009)"]),
    "campaign number": (("campaign=123",), ["campaign=123", "not a name"]),
    "tracking unknown scheme": (("tracking.uri=htp://host:5000",), ["tracking.uri='htp://host:5000'", "scheme 'htp'"]),
    "tracking sqlite two slashes": (("tracking.uri=sqlite://x.db",), ["tracking.uri='sqlite://x.db'", "sqlite:///"]),
    "tracking empty": (("tracking.uri=''",), ["tracking.uri=''", "empty"]),
    "tracking http no host": (("tracking.uri=http:///x",), ["no host"]),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_a_bad_config_value_is_one_line_naming_key_value_and_fix(case, tmp_path):
    overrides, needles = CONFIG_CASES[case]
    check_refused(refused_config(*overrides, outputs=tmp_path / "out"), *needles)
    assert not (tmp_path / "out").exists()  # nothing written, not even the outputs folder


def test_the_default_config_passes_and_writes_nothing(tmp_path):
    check_config(compose_config("round=3", "seed=4294967295", outputs=tmp_path / "out"))
    check_config(compose_config("+selection.proportion_samples=1", "dataset.num_images=10", outputs=tmp_path / "o2"))
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_tracking_server_is_one_line_naming_the_uri(tmp_path):
    uri = f"http://127.0.0.1:{closed_port()}"
    check_refused(
        refused_config(f"tracking.uri={uri}", outputs=tmp_path / "out"),
        f"tracking.uri={uri}",
        "no MLflow server answers",
        "set tracking.uri=",
    )


@contextlib.contextmanager
def http_server(status: int | None) -> Iterator[str]:
    """A server whose /health answers `status`, or (None) one that accepts connections and never answers."""
    if status is None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            sock.close()
        return

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = status if self.path.endswith("/health") else 404
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_healthy_tracking_server_passes(tmp_path):
    with http_server(200) as uri:
        check_config(compose_config(f"tracking.uri={uri}", outputs=tmp_path / "out"))
        check_config(compose_config(f"tracking.uri={uri}/", outputs=tmp_path / "out"))


@pytest.mark.parametrize("status", [404, 500, 503])
def test_a_tracking_uri_that_is_not_an_mlflow_server_is_refused(status, tmp_path):
    with http_server(status) as uri:
        message = refused_config(f"tracking.uri={uri}", outputs=tmp_path / "out")
    check_refused(message, f"tracking.uri={uri}", f"HTTP {status}", "MLflow")


def test_a_tracking_server_that_never_answers_is_refused_within_the_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(checks, "HEALTH_TIMEOUT_S", 0.3)  # 5 s in real use
    with http_server(None) as uri:
        started = time.monotonic()
        message = refused_config(f"tracking.uri={uri}", outputs=tmp_path / "out")
        assert time.monotonic() - started < 1.5
    check_refused(message, f"tracking.uri={uri}", "Timeout", "within 0.3 s")


def test_a_password_in_the_tracking_uri_is_not_printed(tmp_path):
    uri = f"http://me:hunter2@127.0.0.1:{closed_port()}"
    message = refused_config(f"tracking.uri={uri}", outputs=tmp_path / "out")
    assert "hunter2" not in message and "me:***@" in message


def test_other_mlflow_stores_are_left_to_mlflow(tmp_path):
    for uri in (
        "postgresql://u@db/mlflow",
        "postgresql+psycopg2://u@db/mlflow",
        "databricks",
        str(tmp_path / "mlruns"),
    ):
        check_config(compose_config(f"tracking.uri={uri}", outputs=tmp_path / "out"))


def test_outputs_that_cannot_be_a_folder_are_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    for outputs in (tmp_path / "file", tmp_path / "file" / "out"):
        message = refused_config(outputs=outputs)
        check_refused(message, f"paths.outputs={outputs}", "is not a folder", "set paths.outputs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_read_only_outputs_are_one_line(tmp_path, monkeypatch):
    """Root may write anywhere (tests run as root here and in CI), so the permission itself is faked."""
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(checks, "writable", lambda path: path != ro)
    for outputs in (ro, ro / "new" / "out"):
        check_refused(refused_config(outputs=outputs), f"paths.outputs={outputs}", "not writable", "permissions")
    assert list(ro.iterdir()) == []


def test_a_sqlite_store_in_a_folder_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(checks, "writable", lambda path: path != ro)
    uri = f"sqlite:///{ro}/mlflow.db"
    check_refused(refused_config(f"tracking.uri={uri}", outputs=tmp_path / "out"), f"tracking.uri={uri}", "writable")
    (tmp_path / "db").mkdir()
    check_refused(refused_config(f"tracking.uri=sqlite:///{tmp_path / 'db'}", outputs=tmp_path / "out"), "is a folder")


def test_the_hydra_callback_prints_one_line_and_exits_2(tmp_path, capsys):
    cfg = compose_config("campaign=../../escape", outputs=tmp_path / "out")
    with pytest.raises(SystemExit) as exited:
        CheckConfig().on_run_start(config=cfg)
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bpsrun: error: campaign='../../escape'"), err
    CheckConfig().on_run_start(config=compose_config(outputs=tmp_path / "out"))  # a sound config goes on


@pytest.mark.parametrize("args", [("campaign=../escape",), ("round=true", "campaign=c"), ("round=5000",)])
def test_wired_a_campaign_refuses_a_bad_config_before_writing(args, tmp_path, shared_data):
    """Needs `check_config(cfg)` as the first line of Campaign.__init__."""
    out = tmp_path / "out"
    with pytest.raises(BpsrunError):
        run_in_process(*args, outputs=out, data=shared_data)
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["out"])
    assert not out.exists() or [p.name for p in out.iterdir()] == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, needles",
    [
        (("campaign=../../escape",), ["campaign='../../escape'", "not a path"]),
        (("paths.outputs={file}/out",), ["is not a folder"]),
        (("round=true",), ["round=True"]),
    ],
)
def test_wired_the_command_refuses_before_hydra_writes_its_folder(args, needles, tmp_path):
    """Needs the `check_config` callback in conf/config.yaml's hydra.callbacks: Hydra makes its run folder
    (`${paths.outputs}/hydra/${campaign}/...`) before bpsrun's code runs."""
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "file").write_text("x")
    args = tuple(a.format(file=tmp_path / "file") for a in args)
    outputs = next((a.split("=", 1)[1] for a in args if a.startswith("paths.outputs=")), str(work / "out"))
    rest = [a for a in args if not a.startswith("paths.outputs=")]
    proc = run_command(*rest, outputs=Path(outputs), check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("bpsrun: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    check_refused(errors[0], *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "work"]
    assert list(work.iterdir()) == []


# -- 2. names from user data -----------------------------------------------------------------------------------------


def write_meta(path: Path, names: list[str]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "plate"])
        writer.writerows([n, "1"] for n in names)
    return path


NAME_CASES = {
    "absolute": ("/etc/passwd", ["meta.csv:3", "'/etc/passwd'", "absolute path"]),
    "climbs out": ("../x.tif", ["meta.csv:3", "'../x.tif'", "'..'", "outside dataset.path"]),
    "climbs out later": ("sub/../../x.tif", ["meta.csv:3", "'..'"]),
    "dot-dot alone": ("..", ["meta.csv:3", "'..'"]),
    "backslash": ("sub\\x.tif", ["meta.csv:3", "backslash"]),
    "windows climb": ("..\\x.tif", ["meta.csv:3", "'..'"]),
    "newline": ("a\nb.tif", ["meta.csv:4", "line break (U+000A)"]),
    "carriage return": ("a\rb.tif", ["line break (U+000D)"]),
    "line separator": ("a\u2028b.tif", ["line break (U+2028)"]),
    "NUL": ("a\x00b.tif", ["control character (U+0000)"]),
    "tab": ("a\tb.tif", ["control character (U+0009)"]),
    "escape": ("a\x1b[31mb.tif", ["control character (U+001B)"]),
    "subfolder": ("sub/x.tif", ["meta.csv:3", "'sub/x.tif'", "subfolder", "directly in dataset.path"]),
    "hidden": (".x.tif", ["meta.csv:3", "hidden file"]),
    "too long": ("x" * 252 + ".tif", ["meta.csv:3", "longer than 251 bytes", "shorten"]),
}


@pytest.mark.parametrize("case", sorted(NAME_CASES))
def test_a_file_name_that_could_escape_or_break_a_file_is_refused_with_its_row(case, tmp_path):
    name, needles = NAME_CASES[case]
    if "\x00" in name:  # the csv module cannot write NUL
        (tmp_path / "meta.csv").write_text(f"filename,plate\nok.tif,1\n{name},1\n")
    else:
        write_meta(tmp_path / "meta.csv", ["ok.tif", name])
    with pytest.raises(BpsrunError) as refused:
        read_meta(tmp_path / "meta.csv")
    for needle in needles:
        assert needle in str(refused.value), (needle, str(refused.value))


@pytest.mark.parametrize(
    "first, second",
    [("a.tif", "a.png"), ("a.tif", "a"), ("a.tif", "A.TIF"), ("cell.1.tif", "cell.1.png"), ("é.tif", "É.tiff")],
)
def test_names_whose_stems_collide_are_refused_naming_both_rows(first, second, tmp_path):
    write_meta(tmp_path / "meta.csv", ["ok.tif", first, "other.tif", second])
    with pytest.raises(BpsrunError) as refused:
        read_meta(tmp_path / "meta.csv")
    check_refused(str(refused.value), "meta.csv:5", repr(second), repr(first), "(line 3)", "<stem>.json", "rename")


def test_names_that_only_look_alike_are_kept(tmp_path):
    names = ["a.tif", "a.tif.tif", "a b.tif", "a,b.tif", 'a"b.tif', "#%?&.tif", "ünï cødé.tif", "a.b.tif", "-x.tif"]
    write_meta(tmp_path / "meta.csv", names)
    _, rows = read_meta(tmp_path / "meta.csv")
    assert [r["filename"] for r in rows] == names


def test_a_duplicate_names_both_lines(tmp_path):
    write_meta(tmp_path / "meta.csv", ["a.tif", "b.tif", "a.tif"])
    with pytest.raises(BpsrunError, match=r"meta.csv:4: duplicate filename 'a.tif' \(also on line 2\)"):
        read_meta(tmp_path / "meta.csv")


def write_truth(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label"])
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("second", ["track", "no track"])
def test_a_truth_file_labeling_an_image_twice_is_refused_naming_both_lines(second, tmp_path):
    truth = write_truth(tmp_path / "truth.csv", [("a.tif", "track"), ("b.tif", "track"), ("a.tif", second)])
    with pytest.raises(BpsrunError) as refused:
        read_truth(truth, CLASSES)
    check_refused(str(refused.value), "truth.csv:4", "'a.tif'", "first on line 2", "one row per image")
    assert ("the same label" in str(refused.value)) == (second == "track")


def test_truth_line_numbers_count_blank_lines(tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("filename,label\na.tif,track\n\nb.tif,track\na.tif,track\n")
    with pytest.raises(BpsrunError, match=r"truth.csv:5: 'a.tif' is labeled again \(first on line 2"):
        read_truth(truth, CLASSES)


# a dataset=folder with the names changed, run as a campaign: refused before anything is written


def tiny_tiff(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    img = rng.integers(200, 600, (16, 16), dtype=np.uint16)
    img[rng.integers(0, 16, 6), rng.integers(0, 16, 6)] = 3000
    tifffile.imwrite(path, img)


def folder_dataset(root: Path, names: list[str], truth_rows: list[tuple[str, str]] | None = None) -> Path:
    """meta.csv (filename,plate), a tiny TIFF per name (where the name can be a file), and root/../truth.csv."""
    root.mkdir(parents=True)
    for k, name in enumerate(names):
        with contextlib.suppress(OSError, ValueError):
            if not name.startswith("/") and ".." not in name:
                tiny_tiff(root / name, k)
    write_meta(root / "meta.csv", names)
    labels = truth_rows if truth_rows is not None else [(n, CLASSES[k % 2]) for k, n in enumerate(names)]
    write_truth(root.parent / "truth.csv", labels)
    return root


GOOD = [f"img_{k:03d}.tif" for k in range(20)]
FOLDER_CASES: dict[str, tuple[Callable[[], tuple[list[str], list | None]], list[str]]] = {
    "absolute name": (lambda: (GOOD + ["/etc/hostname"], None), ["meta.csv:22", "absolute path"]),
    "name climbs out": (lambda: (GOOD + ["../truth.csv"], None), ["meta.csv:22", "'..'"]),
    "name in a subfolder": (lambda: (GOOD + ["sub/x.tif"], None), ["meta.csv:22", "subfolder"]),
    "stems collide": (lambda: (GOOD + ["img_000.png"], None), ["meta.csv:22", "'img_000.tif' (line 2)"]),
    "truth twice": (
        lambda: (GOOD, [(n, "track") for n in GOOD] + [(GOOD[3], "no track")]),
        ["truth.csv:22", repr(GOOD[3]), "first on line 5"],
    ),
}


@pytest.mark.parametrize("case", sorted(FOLDER_CASES))
def test_a_campaign_on_bad_names_is_refused_before_any_write(case, tmp_path):
    make, needles = FOLDER_CASES[case]
    names, truth = make()
    root = folder_dataset(tmp_path / "data", names, truth)
    out = tmp_path / "out"
    args = ("dataset=folder", f"dataset.path={root}", f"dataset.truth_csv={tmp_path / 'truth.csv'}")
    with pytest.raises(BpsrunError) as refused:
        run_in_process(*args, "selection=random", outputs=out)
    assert not isinstance(refused.value, AwaitingLabels)
    check_refused(str(refused.value), *needles)
    assert snapshot(out / "folder-random-s0") == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out", "truth.csv"]


# -- 3. permissions follow the umask ---------------------------------------------------------------------------------


@contextlib.contextmanager
def umask(mask: int, monkeypatch) -> Iterator[None]:
    """The process umask (read once at import by bpsrun.files) set to `mask` for the block."""
    previous = os.umask(mask)
    monkeypatch.setattr(files, "UMASK", mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_written_files_and_folders_follow_the_umask(mask, file_mode, dir_mode, tmp_path, monkeypatch):
    with umask(mask, monkeypatch):
        atomic_write_text(tmp_path / "a.txt", "a")
        with atomic_file(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"b")
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "inner.txt").write_text("x")
            (tmp / "sub").mkdir()
            atomic_write_text(tmp / "sub" / "nested.json", "{}")
        with atomic_dir(tmp_path / "folder") as tmp:  # replacing an existing folder
            (tmp / "again.txt").write_text("y")
        cached_npy(tmp_path / "c.npy", lambda: np.zeros(3))
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "b.bin") == mode(tmp_path / "c.npy") == file_mode
    assert mode(tmp_path / "folder") == dir_mode
    assert mode(tmp_path / "folder" / "again.txt") == file_mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "c.npy", "folder"]


def test_the_umask_is_read_without_changing_it():
    mask = os.umask(0o022)
    os.umask(mask)
    assert files.read_umask() == mask
    assert os.umask(mask) == mask  # unchanged by reading it


def test_label_studio_renders_are_readable_by_another_user(tmp_path, monkeypatch):
    """A Label Studio server running as another user reads round_<N>/labelstudio/images/*: 0644 in 0755 folders."""
    root = folder_dataset(tmp_path / "data", GOOD)
    args = ("dataset=folder", f"dataset.path={root}", f"dataset.truth_csv={tmp_path / 'truth.csv'}")
    with umask(0o022, monkeypatch), pytest.raises(AwaitingLabels):
        run_in_process(*args, "selection=random", "labeling=labelstudio", outputs=tmp_path / "out")
    campaign = tmp_path / "out" / "folder-random-s0"
    package = campaign / "round_1" / "labelstudio"
    assert len(list((package / "images").glob("*.png"))) == 8
    for path in [campaign, *campaign.rglob("*")]:
        assert mode(path) == (0o755 if path.is_dir() else 0o644), (path, oct(mode(path)))


# -- 4. a full disk --------------------------------------------------------------------------------------------------


def enospc(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*tmp"))


class FillingFile(io.TextIOWrapper):
    """A text file whose disk fills up halfway through a write."""

    def write(self, text):
        super().write(text[: len(text) // 2])
        super().flush()
        raise enospc(self.name)


def test_disk_full_in_atomic_write_text(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    atomic_write_text(target, "previous")
    real_fdopen = os.fdopen
    monkeypatch.setattr(files.os, "fdopen", lambda fd, mode: FillingFile(real_fdopen(fd, mode + "b")))
    with pytest.raises(DiskFull) as full:
        atomic_write_text(target, "new content " * 1000)
    monkeypatch.undo()
    assert str(full.value) == f"disk full while writing {target}; free space and rerun"
    assert isinstance(full.value, BpsrunError) and isinstance(full.value.__cause__, OSError)
    assert target.read_text() == "previous" and temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_disk_full_in_atomic_file(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"previous")
    with pytest.raises(DiskFull, match=f"disk full while writing {target}; free space and rerun"):
        with atomic_file(target) as tmp, open(tmp, "wb") as f:
            f.write(b"half a model")
            raise enospc(tmp)
    assert target.read_bytes() == b"previous" and temporaries(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def raise_enospc(path: Path) -> None:
    raise enospc(path)


@pytest.mark.parametrize("nested", [False, True])
def test_disk_full_in_atomic_dir_names_the_folder_not_its_scratch_copy(nested, tmp_path, monkeypatch):
    target = tmp_path / "predictions"
    with atomic_dir(target) as tmp:
        (tmp / "old.json").write_text("{}")
    real_fdopen = os.fdopen
    with pytest.raises(DiskFull) as full, atomic_dir(target) as tmp:
        (tmp / "a.json").write_text("{}")
        if nested:  # an atomic write inside the scratch folder (schema.json in Lightly's metadata) fills the disk
            monkeypatch.setattr(files.os, "fdopen", lambda fd, mode: FillingFile(real_fdopen(fd, mode + "b")))
            atomic_write_text(tmp / "schema.json", "{}" * 100)
        else:
            raise_enospc(tmp / "b.json")
    monkeypatch.undo()
    assert str(full.value) == f"disk full while writing {target}; free space and rerun"
    assert sorted(p.name for p in target.iterdir()) == ["old.json"] and temporaries(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["predictions"]


def test_disk_full_while_replacing_a_folder_puts_the_previous_one_back(tmp_path, monkeypatch):
    target = tmp_path / "metadata"
    with atomic_dir(target) as tmp:
        (tmp / "old.json").write_text("{}")
    real_replace, failed = os.replace, []

    def replace(src, dst):
        if Path(dst) == target and not failed:  # the new folder's rename; putting the old one back works
            failed.append(src)
            raise enospc(dst)
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(DiskFull), atomic_dir(target) as tmp:
        (tmp / "new.json").write_text("{}")
    monkeypatch.undo()
    assert sorted(p.name for p in target.iterdir()) == ["old.json"] and temporaries(tmp_path) == []


def test_disk_full_in_cached_npy(tmp_path, monkeypatch):
    target = tmp_path / "cache" / "images-48.npy"
    real_save = np.save

    def filling_save(f, array):
        f.write(b"\x93NUMPY partial")
        raise enospc(getattr(f, "name", target))

    monkeypatch.setattr(np, "save", filling_save)
    with pytest.raises(DiskFull, match=f"disk full while writing {target}"):
        cached_npy(target, lambda: np.arange(10.0))
    assert not target.exists() and temporaries(tmp_path) == []
    monkeypatch.setattr(np, "save", real_save)
    assert cached_npy(target, lambda: np.arange(10.0)).tolist() == list(range(10))  # space freed: it is written


def test_disk_full_quota_counts_too(tmp_path):
    with pytest.raises(DiskFull), atomic_file(tmp_path / "x") as tmp:
        raise OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp))


def test_other_write_errors_are_not_called_disk_full(tmp_path):
    with pytest.raises(PermissionError), atomic_file(tmp_path / "x") as tmp:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp))
    assert list(tmp_path.iterdir()) == []


def test_disk_full_errors_survive_pickling():
    import pickle

    again = pickle.loads(pickle.dumps(DiskFull(Path("/x/y"))))
    assert isinstance(again, DiskFull) and again.path == Path("/x/y") and "free space and rerun" in str(again)


def test_a_campaign_whose_disk_fills_stops_with_one_line_and_no_partial_manifest(tmp_path, monkeypatch):
    root = folder_dataset(tmp_path / "data", GOOD)
    args = ("dataset=folder", f"dataset.path={root}", f"dataset.truth_csv={tmp_path / 'truth.csv'}")
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == "manifest.csv":
            raise enospc(dst)
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(DiskFull) as full:
        run_in_process(*args, "selection=random", outputs=tmp_path / "out")
    campaign = tmp_path / "out" / "folder-random-s0"
    check_refused(str(full.value), f"disk full while writing {campaign / 'manifest.csv'}", "free space and rerun")
    assert not (campaign / "manifest.csv").exists() and temporaries(tmp_path / "out") == []
    assert snapshot(campaign) == {}  # a fresh start that wrote nothing leaves nothing


def test_a_failed_mlflow_store_creation_leaves_no_store(tmp_path, monkeypatch):
    """A full disk (or a kill) while MLflow creates its tables leaves nothing at the store's path; the next run
    creates a working store (before, the half-made sqlite file failed every later run)."""
    from mlflow.tracking import MlflowClient

    from bpsrun.tracking.store import open_experiment

    db = tmp_path / "mlflow.db"

    def full_disk(self, *args, **kwargs):
        Path(self.tracking_uri.removeprefix("sqlite:///")).write_bytes(b"SQLite format 3\x00 half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(MlflowClient, "search_experiments", full_disk)
        with pytest.raises(BpsrunError, match="could not create the MLflow store"):
            open_experiment(f"sqlite:///{db}", "bpsrun-x", tmp_path / "mlartifacts")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db.lock"]
    client, experiment = open_experiment(f"sqlite:///{db}", "bpsrun-x", tmp_path / "mlartifacts")
    assert client.get_experiment(experiment).name == "bpsrun-x"


def store_contents(db: Path) -> tuple[list, list, list]:
    """A store's schema, schema revision and experiments (their times left out). A table's clauses are compared
    as a set: two runs of MLflow's migrations order a table's constraints as their Python sets iterate."""
    with closing(sqlite3.connect(db)) as con:
        rows = con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        schema = [(kind, name, sorted(re.split(r",\s*\n", sql or ""))) for kind, name, sql in rows]
        revision = con.execute("SELECT * FROM alembic_version").fetchall()
        experiments = con.execute("SELECT experiment_id, name, artifact_location, lifecycle_stage FROM experiments")
        return schema, revision, experiments.fetchall()


def test_a_new_store_is_a_copy_of_mlflows_empty_one_with_its_own_default_experiment(tmp_path, monkeypatch):
    """The first store migrates MLflow's tables into the user's cache once; later stores copy them and equal a
    store MLflow migrated itself, Default experiment included. A cache that cannot be written costs only time."""
    from bpsrun.tracking.store import create_sqlite_store, empty_store, open_store

    monkeypatch.setenv("BPSRUN_CACHE_DIR", str(tmp_path / "cache"))
    open_store(tmp_path / "migrated.db")  # MLflow's own migrations, in this process's working directory
    expected = store_contents(tmp_path / "migrated.db")
    assert expected[2] == [(0, "Default", str(Path.cwd() / "mlruns" / "0"), "active")]

    create_sqlite_store(tmp_path / "first" / "mlflow.db")
    template = empty_store()
    assert template is not None and template.parent == tmp_path / "cache" / "mlflow"
    assert store_contents(template)[:2] == expected[:2] and store_contents(template)[2] == []
    made = template.stat().st_mtime_ns
    create_sqlite_store(tmp_path / "second" / "mlflow.db")
    assert template.stat().st_mtime_ns == made  # copied, not made again
    for store in ("first", "second"):
        assert store_contents(tmp_path / store / "mlflow.db") == expected, store

    (tmp_path / "not-a-folder").write_text("x")
    monkeypatch.setenv("BPSRUN_CACHE_DIR", str(tmp_path / "not-a-folder" / "cache"))
    assert empty_store() is None
    create_sqlite_store(tmp_path / "third" / "mlflow.db")
    assert store_contents(tmp_path / "third" / "mlflow.db") == expected
    assert sorted(p.name for p in (tmp_path / "third").iterdir()) == ["mlflow.db"]
