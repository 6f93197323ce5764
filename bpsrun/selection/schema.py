"""The keys of Lightly's SelectionConfigV4, vendored: lightly 1.6 removed `lightly.api` (and with it the Worker's
validator), so without it a config is still checked for unknown keys. tests/test_plugins.py checks these sets
against lightly's own models while an installed lightly has them."""

from __future__ import annotations

from typing import Any

from bpsrun.errors import BpsrunError

KEYS = {
    "config": {"auto_tasks", "lightly_path_regex", "n_samples", "proportion_samples", "strategies"},
    "entry": {"input", "strategy"},
    "input": {"categories", "dataset_id", "key", "name", "random_seed", "score", "tag_name", "task", "type"},
    "strategy": {
        "distribution", "num_nearest_neighbors", "operation", "stopping_condition_max_sum",
        "stopping_condition_minimum_typicality", "stopping_condition_minimum_distance", "strength", "target",
        "target_range", "threshold", "type",
    },
}  # fmt: skip


def unknown(data: Any, part: str, where: str) -> None:
    if not isinstance(data, dict):
        raise BpsrunError(f"{where}: expected a mapping of {part} keys, got {data!r}")
    extra = sorted(set(data) - KEYS[part])
    if extra:
        raise BpsrunError(f"{where}: unknown key(s) {extra}; a Lightly selection config allows {sorted(KEYS[part])}")


def check_keys(config: dict[str, Any], source: str) -> None:
    """Unknown keys anywhere in the config, named with their position."""
    unknown(config, "config", source)
    if ("n_samples" in config) == ("proportion_samples" in config):
        raise BpsrunError(f"{source}: give exactly one of n_samples and proportion_samples")
    strategies = config.get("strategies")
    if not isinstance(strategies, list) or not strategies:
        raise BpsrunError(f"{source}: strategies must be a non-empty list of {{input, strategy}} entries")
    for i, entry in enumerate(strategies):
        where = f"{source}: strategies[{i}]"
        unknown(entry, "entry", where)
        for part in ("input", "strategy"):
            unknown(entry.get(part), part, f"{where}.{part}")
            if "type" not in entry[part]:
                raise BpsrunError(f"{where}.{part}: type is required")
