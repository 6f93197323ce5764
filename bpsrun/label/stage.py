"""The label stage: a round's picks (and validation images still unlabeled) -> labels.json (JSON-MIN) and
validation/labels.json, from whichever labeler the config builds."""

from __future__ import annotations

import logging
from typing import Any

from bpsrun.context import Context
from bpsrun.errors import AwaitingLabels, BpsrunError
from bpsrun.faults import checkpoint
from bpsrun.files import atomic_write_json
from bpsrun.label.base import Labeler
from bpsrun.label.jsonmin import file_of, read_labels
from bpsrun.label.validation import keep_validation
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


def label_round(ctx: Context, r: int, labeler: Labeler, picks: list[str], name: str) -> None:
    pending = ctx.val_missing()
    also = f" and {len(pending)} validation images" if pending else ""
    log.info("round %d: labeling %d images%s (labeling=%s)", r, len(picks), also, name)
    records = labeler.label(r, picks, pending)
    training = keep_apart(ctx, records, pending)
    checkpoint("labeling")
    atomic_write_json(ctx.layout.labels(r), training)


def gather_validation(ctx: Context, labeler: Labeler, r: int) -> None:
    """The validation labels given since the round's picks were labeled (the labeller may do them later)."""
    pending = ctx.val_missing()
    if pending:
        keep_apart(ctx, labeler.label(r, [], pending), pending)


def keep_apart(ctx: Context, records: list[dict[str, Any]], validation: list[str]) -> list[dict[str, Any]]:
    """Validation labels go to their own file (they never train a model); the training records are returned."""
    held_out = set(validation)
    keep_validation(ctx.layout, [rec for rec in records if file_of(rec) in held_out])
    return [rec for rec in records if file_of(rec) not in held_out]


def check_validation(ctx: Context, r: int, name: str) -> None:
    """Before round r trains: with split.require_val, every validation label must be in; without, say it is not."""
    missing, total = len(ctx.val_missing()), len(ctx.pool.val)
    if not missing:
        return
    done = f"{total - missing} of {total} validation images labeled"
    if ctx.cfg.split.require_val:
        raise AwaitingLabels(
            f"round {r}: {done} (labeling={name}); label the tasks marked validation (data.kind) and rerun, or "
            f"set split.require_val=false to train and select meanwhile (metrics follow once all are labeled)"
        )
    log.warning(
        "round %d: training without validation metrics: %s (split.require_val=false); they are computed for this "
        "round once the rest are labeled",
        r,
        done,
    )
