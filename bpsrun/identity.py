"""campaign.json: a campaign folder belongs to one dataset, split and seed; another one is refused."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from bpsrun.data.sources import dataset_identity, identity_of
from bpsrun.errors import BpsrunError
from bpsrun.layout import Layout


def split_identity(cfg: DictConfig) -> dict[str, Any]:
    """Which images validate and who labels them; `require_val` only says when rounds may train, so it may change."""
    split = OmegaConf.to_container(cfg.split, resolve=True)
    return {k: v for k, v in split.items() if k != "require_val"}


def campaign_identity(cfg: DictConfig) -> dict[str, Any]:
    return {"dataset": dataset_identity(cfg), "split": split_identity(cfg), "seed": cfg.seed}


def check_identity(cfg: DictConfig, layout: Layout) -> dict[str, Any]:
    """This run's identity, refused if the folder's campaign.json says otherwise."""
    identity = campaign_identity(cfg)
    path = layout.identity
    if path.exists():
        stored = layout.read_state(path)
        stored["dataset"] = identity_of(stored.get("dataset") or {})  # older campaigns stored the loader's name
        for key, value in identity.items():
            if stored.get(key) != value:
                raise BpsrunError(
                    f"{path}: this campaign was started with {key}={stored.get(key)}, now {key}={value}; "
                    f"keep the original settings or start a new campaign with campaign=<new name>"
                )
    return identity
