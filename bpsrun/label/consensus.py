"""One training label per image from several annotations (`labeling.consensus=majority`).

An annotator's vote on an image is their newest record of it: labeling one image twice is a correction, not a
second vote. Ties go to the class the previous round's model finds likelier, or (no model yet) to a draw seeded by
the campaign's seed and the file, so a rerun gives the same labels.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from bpsrun.label.jsonmin import CHOICE_KEY, file_of

# file names -> the previous round's class probabilities of those files (rows in their order), or None
ProbsOf = Callable[[list[str]], np.ndarray | None]


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
