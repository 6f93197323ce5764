"""`pip install .` (not editable) gives a working `bpsrun` command: the wheel carries the repository's conf/ as
bpsrun/conf, and the command runs from any folder, with Hydra's shell completion and the app's --help.

The wheel is built offline (`--no-build-isolation`: this venv's setuptools) from a copy of the sources, so the
checkout gets no build/ folder, and installed with `--no-deps --no-index` into a fresh venv that borrows this
venv's installed dependencies through a .pth file: nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from tests.conftest import TINY as CONFTEST_TINY

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "bpsrun", "conf")
TINY = ["dataset.num_images=60", *CONFTEST_TINY]


def test_pyproject_lists_every_package_and_config_folder():
    """conf/ is mapped into bpsrun, so the packages are listed by hand: none may be missing from the wheel."""
    from setuptools import find_packages

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    code = set(find_packages(str(REPO), include=["bpsrun", "bpsrun.*"]))
    conf = REPO / "conf"
    groups = {
        ".".join(("bpsrun", "conf", *p.relative_to(conf).parts))
        for p in [conf, *conf.rglob("*")]
        if p.is_dir() and p.name != "__pycache__"
    }
    expected = code | groups
    assert listed == expected, (
        f"pyproject.toml [tool.setuptools] packages: add {sorted(expected - listed)}, "
        f"remove {sorted(listed - expected)}"
    )


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    env = {k: v for k, v in (env or os.environ).items() if k != "PYTHONPATH"}  # nothing may shadow the wheel
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv holding the built wheel's bpsrun, with this venv's dependencies on its path."""
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    wheels = root / "wheels"
    run(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, cwd=src)
    (wheel,) = wheels.glob("bpsrun-*.whl")

    env_dir = root / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", env_dir, cwd=root)
    python = env_dir / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root).strip())
    # Plain path lines: the main venv's own .pth files (its editable finder of bpsrun) are not run.
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "zz_bpsrun_test_deps.pth").write_text("".join(f"{p}\n" for p in ours))
    # --ignore-installed: the editable bpsrun on the borrowed path is neither uninstalled nor counted as installed.
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", wheel, cwd=root)

    where = run(
        python, "-c", "import bpsrun, bpsrun.config_path as c; print(bpsrun.__file__); print(c.config_dir())", cwd=root
    )
    package, conf = where.split()
    assert Path(package).is_relative_to(site), f"bpsrun imported from {package}, not from the wheel in {site}"
    assert Path(conf) == site / "bpsrun" / "conf" and (Path(conf) / "config.yaml").is_file()
    return env_dir


@pytest.mark.slow
def test_wheel_carries_the_configs(venv):
    site = next((venv / "lib").glob("python3*/site-packages"))
    packaged = {str(p.relative_to(site / "bpsrun" / "conf")) for p in (site / "bpsrun" / "conf").rglob("*.yaml")}
    assert packaged == {str(p.relative_to(REPO / "conf")) for p in (REPO / "conf").rglob("*.yaml")}


@pytest.mark.slow
def test_installed_command_composes_and_helps(venv, tmp_path):
    bpsrun = venv / "bin" / "bpsrun"
    job = run(bpsrun, "--cfg", "job", cwd=tmp_path)
    assert "name: synthetic" in job and "name: active" in job

    helptext = run(bpsrun, "--help", cwd=tmp_path)
    assert "bpsrun: config-driven active learning" in helptext and "README" in helptext
    groups = next(line for line in helptext.splitlines() if line.startswith("selection:"))
    assert "typiclust" in groups and "random" in groups

    install = run(bpsrun, "--shell-completion", "install=bash", cwd=tmp_path)
    assert "complete" in install and "hydra_bash_completion bpsrun" in install
    env = {**os.environ, "COMP_LINE": "bpsrun selection=", "COMP_POINT": "17"}
    choices = run(bpsrun, "-sc", "query=bash", cwd=tmp_path, env=env).split()
    assert "selection=typiclust" in choices


@pytest.mark.slow
def test_installed_command_runs_a_campaign(venv, tmp_path):
    out = tmp_path / "out"
    run(venv / "bin" / "bpsrun", "round=1", f"paths.outputs={out}", *TINY, cwd=tmp_path, timeout=600)
    round_1 = out / "synthetic-active-s0" / "round_1"
    assert len((round_1 / "selected.txt").read_text().splitlines()) == 8
    assert (round_1 / "metrics.json").is_file()
