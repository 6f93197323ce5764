"""One training label per image from several annotations (`labeling.consensus`).

An annotator's vote on an image is their newest record of it: labeling one image twice is a correction, not a
second vote. `majority`: the most voted class; ties go to the class the previous round's model finds likelier, or
(no model yet) to a draw seeded by the campaign's seed and the file, so a rerun gives the same labels. `crowdlab`:
cleanlab's CROWDLAB, which weighs each annotator by their estimated quality and the model's probabilities.
A consensus is any function with `majority`'s signature, named by a dotted path (`mypkg.module.function`).
"""

from __future__ import annotations

import importlib
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from bpsrun.errors import BpsrunError
from bpsrun.label.jsonmin import CHOICE_KEY, file_of

# file names -> the previous round's class probabilities of those files (rows in their order), or None
ProbsOf = Callable[[list[str]], np.ndarray | None]
# (records, classes, seed, probs_of) -> file -> consensus label
Consensus = Callable[[list[dict[str, Any]], list[str], int, ProbsOf | None], dict[str, str]]
BUILT_IN = ("majority", "crowdlab")


def annotator_of(rec: dict[str, Any]) -> str:
    return str(rec.get("annotator") or "unknown")


def votes(records: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """file -> annotator -> label, each annotator's later record of a file replacing their earlier one."""
    out: dict[str, dict[str, str]] = {}
    for rec in records:
        out.setdefault(file_of(rec), {})[annotator_of(rec)] = rec[CHOICE_KEY]
    return out


def seeded_pick(seed: int, file: str, tied: list[str]) -> str:
    return tied[int(np.random.default_rng([seed, zlib.crc32(file.encode())]).integers(len(tied)))]


def majority(
    records: list[dict[str, Any]], classes: list[str], seed: int, probs_of: ProbsOf | None = None
) -> dict[str, str]:
    """file -> consensus label: the most voted class; ties broken by the model, else by a seeded draw."""
    labels: dict[str, str] = {}
    tied: dict[str, list[str]] = {}
    for file, by_annotator in votes(records).items():
        counts = Counter(by_annotator.values())
        top = max(counts.values())
        best = [c for c in classes if counts.get(c) == top]  # in class order: the draw does not depend on voters
        if len(best) == 1:
            labels[file] = best[0]
        else:
            tied[file] = best
    probs = probs_of(list(tied)) if tied and probs_of is not None else None
    for k, (file, best) in enumerate(tied.items()):
        if probs is None:
            labels[file] = seeded_pick(seed, file, best)
        else:
            labels[file] = max(best, key=lambda c: probs[k][classes.index(c)])
    return labels


def crowdlab(
    records: list[dict[str, Any]], classes: list[str], seed: int, probs_of: ProbsOf | None = None
) -> dict[str, str]:
    """file -> CROWDLAB's consensus label (cleanlab.multiannotator.get_label_quality_multiannotator); the majority
    where CROWDLAB cannot run: no model yet (round 1), fewer than two annotators, or no image with two labels."""
    by_file = votes(records)
    files = list(by_file)
    annotators = sorted({a for by in by_file.values() for a in by})
    shared = any(len(by) >= 2 for by in by_file.values())
    probs = probs_of(files) if probs_of is not None and len(annotators) >= 2 and shared else None
    if probs is None:
        return majority(records, classes, seed, probs_of)
    from cleanlab.multiannotator import get_label_quality_multiannotator  # imports sklearn: only when used

    matrix = pd.DataFrame(np.nan, index=range(len(files)), columns=annotators)
    for i, file in enumerate(files):
        for annotator, label in by_file[file].items():
            matrix.loc[i, annotator] = classes.index(label)
    quality = get_label_quality_multiannotator(matrix, probs, verbose=False)["label_quality"]
    return {file: classes[int(c)] for file, c in zip(files, quality["consensus_label"], strict=True)}


def consensus_function(name: str) -> Consensus:
    """`labeling.consensus`: a built-in name, or the dotted path of a function with `majority`'s signature."""
    module, _, attr = (name if "." in name else f"{__name__}.{name}").rpartition(".")
    try:
        function = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        function = None
    if not callable(function):
        raise BpsrunError(
            f"labeling.consensus={name!r} is unknown; use one of {list(BUILT_IN)} or the dotted path of a function "
            f"(records, classes, seed, probs_of) -> {{file: label}}"
        )
    return function
