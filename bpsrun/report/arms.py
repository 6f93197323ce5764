"""A sweep's arms: its jobs grouped by everything they chose apart from the seed, named by what differs.

An arm is `typiclust` when only the strategy varies, `small_cnn/tutorial` when the learner varies too (learner
first, then strategy, then any other swept value). A value that only restates the others (the `recipe` that
chose that learner and strategy) is left out of the name. Each arm is compared, seed by seed, with its baseline:
by default the arm that differs from it only in choosing `selection=random`, or one named arm for all.
"""

from __future__ import annotations

from bpsrun.errors import BpsrunError

NAMED_FIRST = ("model", "selection")  # always in the name when they vary
RANDOM = "random"


def varying_keys(choices: list[dict[str, str]]) -> list[str]:
    """The keys whose value is not the same in every job, `model` and `selection` first, the rest sorted."""
    first = {k: i for i, k in enumerate(NAMED_FIRST)}
    keys = sorted({k for c in choices for k in c}, key=lambda k: (first.get(k, len(first)), k))
    return [k for k in keys if len({c.get(k) for c in choices}) > 1]


def distinct(choices: list[dict[str, str]], keys: list[str]) -> int:
    return len({tuple(c.get(k) for k in keys) for c in choices})


def naming_keys(choices: list[dict[str, str]]) -> list[str]:
    """The varying keys, less each one outside NAMED_FIRST that the others already tell apart. With nothing
    varying (one arm over seeds) the arm is named by its strategy."""
    keys = varying_keys(choices)
    for key in reversed([k for k in keys if k not in NAMED_FIRST]):
        rest = [k for k in keys if k != key]
        if rest and distinct(choices, rest) == distinct(choices, keys):
            keys = rest
    return keys or ["selection"]


def arm_names(choices: list[dict[str, str]]) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Each job's arm name, and each arm's values of the naming keys."""
    keys = naming_keys(choices)
    values = [{k: c.get(k, "-") for k in keys} for c in choices]
    names = ["/".join(v.values()) for v in values]
    return names, dict(zip(names, values))


def shared_values(choices: list[dict[str, str]], names: list[str]) -> dict[str, set[str]]:
    """Each arm's choice values that every one of its jobs made (the model and strategy, the recipe, ...)."""
    out: dict[str, set[str]] = {}
    for name, c in zip(names, choices):
        values = {str(v) for v in c.values()}
        out[name] = out[name] & values if name in out else values
    return out


def named(baseline: str, shared: dict[str, set[str]]) -> str:
    """The arm a baseline names: an arm's own name, or choices joined by "/" that exactly one arm made, so a
    sweep's `report.baseline: small_cnn/tutorial` still finds its arm where only the strategy varies (the arm is
    then named `tutorial`)."""
    if baseline in shared:
        return baseline
    found = [name for name, values in shared.items() if set(baseline.split("/")) <= values]
    if len(found) != 1:
        raise BpsrunError(f"baseline {baseline!r} is no arm of this sweep; its arms: {', '.join(shared)}")
    return found[0]


def baselines(arms: dict[str, dict[str, str]], baseline: str | None) -> dict[str, str | None]:
    """Each arm's baseline arm, None for the baseline itself and for an arm without one."""
    if baseline is not None:
        if baseline not in arms:
            raise BpsrunError(f"baseline {baseline!r} is no arm of this sweep; its arms: {', '.join(arms)}")
        return {name: None if name == baseline else baseline for name in arms}
    by_values = {tuple(v.items()): name for name, v in arms.items()}
    out: dict[str, str | None] = {}
    for name, values in arms.items():
        random = by_values.get(tuple({**values, "selection": RANDOM}.items())) if "selection" in values else None
        out[name] = None if random == name else random
    return out
