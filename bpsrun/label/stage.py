"""The label stage: a round's picks -> labels.json (JSON-MIN), from whichever labeler the config builds."""

from __future__ import annotations

import logging

from bpsrun.faults import checkpoint
from bpsrun.files import atomic_write_json
from bpsrun.label.base import Labeler
from bpsrun.layout import Layout

log = logging.getLogger("bpsrun")


def label_round(layout: Layout, r: int, labeler: Labeler, picks: list[str], name: str) -> None:
    log.info("round %d: labeling %d images (labeling=%s)", r, len(picks), name)
    labels = labeler.label(r, picks)
    checkpoint("labeling")
    atomic_write_json(layout.labels(r), labels)
