"""Selection configs in Lightly's SelectionConfigV4 format: choosing the round's config and validating it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bpsrun.errors import BpsrunError
from bpsrun.selection.schema import check_keys

# strategy type -> the input types it can take
INPUTS_FOR = {
    "DIVERSITY": ("EMBEDDINGS",),
    "TYPICALITY": ("EMBEDDINGS",),
    "SIMILARITY": ("EMBEDDINGS",),
    "WEIGHTS": ("SCORES", "RANDOM", "METADATA", "PREDICTIONS"),
    "THRESHOLD": ("SCORES", "RANDOM", "METADATA", "PREDICTIONS"),
    "BALANCE": ("METADATA", "PREDICTIONS"),
}

# PREDICTIONS name -> the strategies that can use it: a class per sample, or a count per sample
PREDICTION_NAMES = {"CLASS_DISTRIBUTION": ("BALANCE",), "CATEGORY_COUNT": ("WEIGHTS", "THRESHOLD")}

# inputs from another Lightly dataset exist only on the Worker's side
UNSUPPORTED_FIELDS = ("dataset_id",)


def whole(low: int, optional: bool = False) -> tuple[str, Callable[[Any], bool]]:
    def ok(v: Any) -> bool:
        return (optional and v is None) or (isinstance(v, int) and not isinstance(v, bool) and v >= low)

    return f"an integer >= {low}" + (" or null" if optional else ""), ok


def number(low: float, high: float = float("inf"), optional: bool = False) -> tuple[str, Callable[[Any], bool]]:
    def ok(v: Any) -> bool:
        return (optional and v is None) or (isinstance(v, int | float) and not isinstance(v, bool) and low < v <= high)

    span = f"> {low:g}" if high == float("inf") else f"in ({low:g}, {high:g}]"
    return f"a number {span}" + (" or null" if optional else ""), ok


# bpsrun's own strategy types: Lightly's validator does not know them (nor does the Worker run them), so their
# entries are checked here, option -> (what it must be, check). They pick the whole round.
EXTENSIONS: dict[str, dict[str, tuple[str, Callable[[Any], bool]]]] = {
    "TYPICLUST": {"num_nearest_neighbors": whole(1), "max_clusters": whole(1), "min_cluster_size": whole(1)},
    "PROBCOVER": {
        "radius": number(0.0, optional=True),
        "purity": number(0.0, 1.0),
        "num_classes": whole(2, optional=True),
    },
    "ACTIVELAB": {"max_annotations": whole(2, optional=True)},
}
# the input each extension reads: embeddings, or the previous round's predictions (with the labeled images'
# annotations: ActiveLab may pick a labeled image for another annotation)
EXTENSION_INPUT = {"TYPICLUST": "EMBEDDINGS", "PROBCOVER": "EMBEDDINGS", "ACTIVELAB": "PREDICTIONS"}
# what Lightly's validator sees in an extension entry's place, so the rest of the config is still checked by it
STAND_IN = {"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}


def is_extension(entry: object) -> bool:
    strategy = entry.get("strategy") if isinstance(entry, dict) else None
    return isinstance(strategy, dict) and strategy.get("type") in EXTENSIONS


def extension_entry(config: dict[str, Any], source: str = "selection config") -> dict[str, Any] | None:
    """The round's TYPICLUST, PROBCOVER or ACTIVELAB entry, if any: it produces the whole pick list, so it stands
    alone."""
    entries = config.get("strategies") or []
    for i, entry in enumerate(entries):
        if is_extension(entry):
            if len(entries) > 1:
                kind = entry["strategy"]["type"]
                raise BpsrunError(
                    f"{source}: strategies[{i}]: {kind} picks the whole round itself and does not combine with "
                    f"other strategies; make it the round's only entry"
                )
            return entry
    return None


def check_extension(entry: dict[str, Any], where: str) -> None:
    """An extension entry's keys and option values (unknown keys refused, naming the allowed ones)."""
    kind, options = entry["strategy"]["type"], EXTENSIONS[entry["strategy"]["type"]]
    extra = sorted(set(entry) - {"input", "strategy"})
    if extra:
        raise BpsrunError(f"{where}: unknown key {extra[0]!r}; an entry has only the keys ['input', 'strategy']")
    wanted = {"type": EXTENSION_INPUT[kind]}
    given = entry.get("input")
    if not isinstance(given, dict) or {k: v for k, v in given.items() if k != "task"} != wanted:
        shown = "{type: EMBEDDINGS}" if wanted["type"] == "EMBEDDINGS" else "{type: PREDICTIONS, task: <task>}"
        raise BpsrunError(f"{where}: {kind} takes only input: {shown}, got {given!r}")
    for key, value in entry["strategy"].items():
        if key == "type":
            continue
        if key not in options:
            raise BpsrunError(f"{where}: {kind} has no option {key!r}; allowed keys: {['type', *options]}")
        meaning, ok = options[key]
        if not ok(value):
            raise BpsrunError(f"{where}: {kind} {key} must be {meaning}, got {value!r}")


def round_config(selection: dict[str, Any], round_: int) -> dict[str, Any]:
    """The Lightly selection config for this round: `first_round` when no predictions exist, else `later_rounds`.

    The preset's `n_samples` is the budget unless the round config sets its own `n_samples` or
    `proportion_samples`.
    """
    block = selection["first_round"] if round_ == 1 else selection.get("later_rounds") or selection["first_round"]
    config = dict(block)
    if "n_samples" not in config and "proportion_samples" not in config:
        config = {"n_samples": selection["n_samples"], **config}
    return config


def name_types(config: dict[str, Any], source: str) -> None:
    """Unknown strategy or input types, named with their position (lightly's validator says only `type`)."""
    inputs = sorted({t for types in INPUTS_FOR.values() for t in types})
    for i, entry in enumerate(config.get("strategies") or []):
        if not isinstance(entry, dict):
            continue
        for part, valid in (("strategy", [*INPUTS_FOR, *EXTENSIONS]), ("input", list(inputs))):
            kind = (entry.get(part) or {}).get("type") if isinstance(entry.get(part), dict) else None
            if kind is not None and kind not in valid:
                raise BpsrunError(f"{source}: strategies[{i}].{part}.type={kind!r} is unknown; use one of {valid}")


def snake(key: object) -> str:
    """Lightly's validator reports its camelCase aliases (`nSamples`); users write the snake_case keys."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", str(key)).lower()


def validate(config: dict[str, Any], source: str) -> None:
    """Lightly's own validator (the Worker's rules, unknown keys rejected), then what our engine supports.

    Extension entries (EXTENSIONS) are checked by our rules; the rest of their config still goes to Lightly's.
    """
    name_types(config, source)
    extension = extension_entry(config, source)
    lightly_view = {**config, "strategies": [STAND_IN]} if extension else config
    lightly_rules(lightly_view, source)
    if extension:
        check_extension(extension, f"{source}: strategies[0]")
        return
    check_entries(config, source)


def lightly_rules(config: dict[str, Any], source: str) -> None:
    """Lightly's own validator where the installed lightly ships it (before 1.6), else the vendored key check."""
    try:
        from lightly.api.api_workflow_compute_worker import selection_config_from_dict
    except ImportError:
        check_keys(config, source)
        return
    from pydantic.v1 import ValidationError

    try:
        selection_config_from_dict(config)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(snake(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise BpsrunError(f"{source}: invalid Lightly selection config ({problems}); see README 'Selection'") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise BpsrunError(f"{source}: invalid Lightly selection config ({exc}); see README 'Selection'") from None


def check_entries(config: dict[str, Any], source: str) -> None:
    """What the local engine needs beyond Lightly's schema: inputs that fit their strategies, complete settings."""
    for i, entry in enumerate(config["strategies"]):
        strategy, kind, source_type = entry["strategy"], entry["strategy"]["type"], entry["input"]["type"]
        where = f"{source}: strategies[{i}]"
        if source_type not in INPUTS_FOR[kind]:
            raise BpsrunError(f"{where}: {kind} needs input.type in {INPUTS_FOR[kind]}, got {source_type}")
        if kind == "THRESHOLD" and (strategy.get("threshold") is None or strategy.get("operation") is None):
            raise BpsrunError(f"{where}: THRESHOLD needs both strategy.threshold and strategy.operation")
        if kind == "BALANCE" and not strategy.get("target") and strategy.get("distribution") in (None, "TARGET"):
            raise BpsrunError(f"{where}: BALANCE needs strategy.target, or distribution UNIFORM or INPUT")
        for key in UNSUPPORTED_FIELDS:
            if entry["strategy"].get(key) is not None or entry["input"].get(key) is not None:
                raise BpsrunError(
                    f"{where}: {key} is valid for the Lightly Worker but not supported by the local engine; remove it"
                )
        name = entry["input"].get("name")
        if source_type == "PREDICTIONS" and kind not in PREDICTION_NAMES.get(name, ()):
            valid = [n for n, kinds in PREDICTION_NAMES.items() if kind in kinds]
            raise BpsrunError(f"{where}: {kind} with a PREDICTIONS input needs input.name in {valid}, got {name}")
        limits = (strategy.get("stopping_condition_max_sum"), strategy.get("target_range"))
        if kind != "WEIGHTS" and any(v is not None for v in limits):
            raise BpsrunError(f"{where}: stopping_condition_max_sum and target_range apply to WEIGHTS only")
        low, high = (
            (strategy.get("target_range") or {}).get("min_sum"),
            (strategy.get("target_range") or {}).get("max_sum"),
        )
        if low is not None and high is not None and low > high:
            raise BpsrunError(f"{where}: target_range.min_sum ({low}) is above max_sum ({high})")
