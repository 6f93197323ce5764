"""What every labeler gets from the campaign and what it gives back.

A labeler is a class named by `_target_` in `conf/labeling/<name>.yaml`: it is built with that file's keys and
`context=LabelContext`, and turns a round's picks (and, in campaigns whose validation sample is labeled by
people, `split.val_labels`, the validation images still unlabeled) into JSON-MIN records (`bpsrun.label.jsonmin`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bpsrun.layout import Layout


class LabelContext:
    """The campaign as a labeler sees it (a plain class: it is handed to `_target_`, never put into a config)."""

    def __init__(
        self,
        campaign: str,
        classes: list[str],
        truth_csv: Path | None,
        layout: Layout,
        image_path: Callable[[str], Path],
        previous_probs: Callable[[int, list[str]], np.ndarray | None],
        require_val: bool,
    ):
        self.campaign = campaign
        self.classes = classes
        self.truth_csv = truth_csv  # ground truth, read by the oracle only
        self.layout = layout
        self.image_path = image_path  # pool file -> image path
        self.previous_probs = previous_probs  # (round, files) -> the previous round's probabilities; None in round 1
        self.require_val = require_val  # split.require_val: a labeler that waits, waits for the validation labels too


class Labeler(Protocol):
    def label(self, round_: int, files: list[str], validation: list[str]) -> list[dict[str, Any]]:
        """JSON-MIN records of those labeled so far among `files` (round `round_`'s picks) and `validation`
        (held-out images: shown to the labeller marked as validation, never trained on); or raise AwaitingLabels
        while the picks are not labeled."""
        ...
