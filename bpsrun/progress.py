"""Progress on long work: tqdm bars on a terminal; elsewhere (a log file, CI) plain lines, never
carriage-return frames. Lightning's bar is replaced the same way (bpsrun.model.trainers.LineProgressBar)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm

PLAIN_INTERVAL_S = 15.0  # a log file gets a line at most this often per bar, and one at the end


def interactive() -> bool:
    return sys.stderr.isatty()


class Lines:
    """A file for tqdm that turns its redraws ("\\r...") into whole lines."""

    def __init__(self, out: TextIO):
        self.out = out

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self.out.write(text + "\n")

    def flush(self) -> None:
        self.out.flush()


def progress(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """tqdm(iterable, **kwargs) on a terminal; a line every PLAIN_INTERVAL_S and a last one elsewhere."""
    if interactive():
        return tqdm(iterable, **kwargs)
    plain = {"file": Lines(sys.stderr), "mininterval": PLAIN_INTERVAL_S, "ascii": True, "leave": True}
    return tqdm(iterable, **{**kwargs, **plain})
