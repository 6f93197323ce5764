"""Swappable parts (dataset source, labeler, embedding, learner, selection backend, learning-rate schedule) are
built from their YAML's `_target_`: adding one is a new class and a new YAML, never an edit to the campaign."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from bpsrun.errors import BpsrunError

# keys that describe a choice (run names, the split's defaults) rather than configure the part
DESCRIPTIVE = (
    "name",
    "group_by",
    "stratify_by",
    "max_seconds_per_label",
    "consensus",
)  # read by the campaign, not the part


def build(node: DictConfig, where: str, optional: Mapping[str, Any] | None = None, **runtime: Any) -> Any:
    """`_target_(**keys, **runtime)`: the part `node` names, called with its other keys and the run's objects.

    `runtime` holds Python objects (the campaign's context, a trainer factory) that never enter the config, so
    they are passed to the partial Hydra builds rather than merged into it. `optional` holds runtime objects only
    some parts of the group use (a learner's `encoder`): each goes only to a target that names it as a parameter,
    so the others need no parameter they would ignore. `where` is the config group, for messages.
    """
    if not isinstance(node, DictConfig):  # `trainer.lr_schedule=constant`: the key users typed before groups
        raise BpsrunError(
            f"{where.replace('/', '.')}={node}: this choice is a config group now; use {where}={node} "
            f"(options: conf/{where}/)"
        )
    spec = OmegaConf.to_container(node, resolve=True)
    if "_target_" not in spec:
        raise BpsrunError(
            f"{where}: the config has no _target_; name the class that implements it, e.g. "
            f"`_target_: bpsrun.label.oracle.Oracle` (see conf/{where}/)"
        )
    args = {k: v for k, v in spec.items() if k not in DESCRIPTIVE}
    try:
        factory = instantiate({**args, "_partial_": True})
    except InstantiationException as exc:
        raise BpsrunError(
            f"{where}: cannot build {spec['_target_']} ({exc}); check the keys in conf/{where}/"
        ) from None
    return factory(**runtime, **accepted(factory, optional or {}))


def accepted(factory: Callable[..., Any], parts: Mapping[str, Any]) -> dict[str, Any]:
    """The `parts` whose names are parameters of `factory` (a `**kwargs` catch-all does not count)."""
    named = {
        name
        for name, p in inspect.signature(factory).parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return {k: v for k, v in parts.items() if k in named}
