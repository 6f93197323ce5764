"""Every selection preset composes from the real config and passes lightly's validator and ours, both rounds."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from bpsrun.selection.config import round_config, validate

CONF = Path(__file__).resolve().parents[1] / "conf"
PRESETS = sorted(p.stem for p in (CONF / "selection").glob("*.yaml"))


def test_all_presets_are_listed():
    assert PRESETS == [
        "active",
        "activelab",
        "bald",
        "bps_balanced",
        "diversity",
        "hybrid",
        "margin",
        "probcover",
        "random",
        "tutorial",
        "typicality",
        "typiclust",
        "typiclust_margin",
    ]


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_is_valid(preset):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"selection={preset}"])
    selection = OmegaConf.to_container(cfg.selection, resolve=True)
    assert selection["name"] == preset
    for r in (1, 2):
        config = round_config(selection, r)
        validate(config, f"{preset} round {r}")
        assert config["n_samples"] == selection["n_samples"]
    if preset in ("active", "bald", "hybrid", "typicality", "bps_balanced", "margin", "typiclust_margin"):
        assert round_config(selection, 2)["strategies"][0]["input"]["type"] == "SCORES"


@pytest.mark.parametrize(
    "dataset, stratify", [("synthetic", "particle_type"), ("bps", "particle_type"), ("folder", None)]
)
def test_split_defaults_follow_the_dataset(dataset, stratify):
    """A folder of the user's own images has no BPS columns: its split is not stratified unless asked to be."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"dataset={dataset}"])
    assert cfg.split.stratify_by == stratify
    assert cfg.split.group_by == ("well" if dataset == "bps" else "none")
