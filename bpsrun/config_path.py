"""Where the Hydra configs are: the repository's `conf/` in a checkout or editable install (edits take effect at
once), else the copy a built wheel carries as `bpsrun/conf` (pyproject.toml maps conf/ there at build time)."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def config_dir() -> str:
    """An absolute folder, as `@hydra.main(config_path=...)` takes it."""
    checkout = PACKAGE.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "conf" / "config.yaml").is_file():
        return str(checkout / "conf")
    return str(PACKAGE / "conf")
