"""The label stage: a round's picks -> labels.json (JSON-MIN), from whichever labeler the config builds."""

from __future__ import annotations

import logging

from bpsrun.errors import BpsrunError
from bpsrun.faults import checkpoint
from bpsrun.files import atomic_write_json
from bpsrun.label.base import Labeler
from bpsrun.label.jsonmin import read_labels
from bpsrun.layout import Layout

log = logging.getLogger("bpsrun")


def check_labels(layout: Layout, r: int, picks: list[str], classes: list[str]) -> None:
    """labels.json holds labels of this round's picks only (the label stage writes nothing else)."""
    foreign = sorted(set(read_labels(layout.labels(r), classes)) - set(picks))
    if foreign:
        raise BpsrunError(
            f"{layout.labels(r)}: labels {foreign[:3]} of images not picked in round {r} (selected.txt); restore "
            f"the file, or delete it to label round {r} again"
        )


def label_round(layout: Layout, r: int, labeler: Labeler, picks: list[str], name: str) -> None:
    log.info("round %d: labeling %d images (labeling=%s)", r, len(picks), name)
    labels = labeler.label(r, picks)
    checkpoint("labeling")
    atomic_write_json(layout.labels(r), labels)
