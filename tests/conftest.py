import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A campaign small enough for CI: 60 synthetic images, 8 picks a round, two epochs everywhere.
TINY = [
    "selection.n_samples=8",
    "trainer.max_epochs=2",
    "trainer.min_samples_per_epoch=16",
    "embedding.epochs=2",
    "embedding.image_size=32",
    "model.image_size=48",
]


def bpsrun_command(*overrides: str, outputs: Path, data: Path | None = None) -> list[str]:
    """`python -m bpsrun` with the TINY settings and, unless a dataset is named, 60 synthetic images."""
    flags = [o for o in overrides if o.startswith("-")]  # Hydra wants -m before the overrides
    rest = [o for o in overrides if not o.startswith("-")]
    if not any(o.startswith("dataset=") for o in rest):
        rest.insert(0, "dataset.num_images=60")
    args = [sys.executable, "-m", "bpsrun", *flags, f"paths.outputs={outputs}", *TINY, *rest]
    if data is not None:
        args.append(f"paths.data={data}")
    return args


def run_bpsrun(
    *overrides: str, outputs: Path, data: Path | None = None, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The real command, in a subprocess, as a user would type it."""
    args = bpsrun_command(*overrides, outputs=outputs, data=data)
    proc = subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})}
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"bpsrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory) -> Path:
    """Generated datasets shared by the end-to-end tests (generation is deterministic)."""
    return tmp_path_factory.mktemp("data")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of the campaign (the lock file's content is the last holder's pid, not state)."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }
