"""The campaign folder: every path a stage reads or writes, in one place (the output contract in the README)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bpsrun.errors import BpsrunError


@dataclass(frozen=True)
class Layout:
    root: Path  # outputs/<campaign>

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.csv"

    @property
    def identity(self) -> Path:
        return self.root / "campaign.json"

    @property
    def lightly(self) -> Path:
        return self.root / "lightly"

    @property
    def metadata(self) -> Path:
        return self.lightly / ".lightly" / "metadata"

    @property
    def ssl_embeddings(self) -> Path:
        return self.root / "embeddings" / "ssl.npy"

    @property
    def ssl_backbone(self) -> Path:
        """The self-supervised network behind ssl_embeddings (its state_dict), for learners that build on it."""
        return self.root / "embeddings" / "ssl.pt"

    @property
    def ssl_key(self) -> Path:
        """The digest of the settings (pool, seed, the embedding's settings or checkpoint) the campaign's copies stand for."""
        return self.root / "embeddings" / "ssl.key"

    @property
    def validation_labels(self) -> Path:
        """The validation sample's labels (JSON-MIN), apart from every round's training labels."""
        return self.root / "validation" / "labels.json"

    def image_cache(self, size: int) -> Path:
        return self.root / "cache" / f"images-{size}.npy"

    def round_dir(self, r: int) -> Path:
        return self.root / f"round_{r}"

    def selection(self, r: int) -> Path:
        return self.round_dir(r) / "selection.json"

    def selected(self, r: int) -> Path:
        return self.round_dir(r) / "selected.txt"

    def labels(self, r: int) -> Path:
        return self.round_dir(r) / "labels.json"

    def labelstudio(self, r: int) -> Path:
        return self.round_dir(r) / "labelstudio"

    def model(self, r: int) -> Path:
        return self.round_dir(r) / "model.pt"

    def metrics(self, r: int) -> Path:
        return self.round_dir(r) / "metrics.json"

    def round_lightly(self, r: int) -> Path:
        return self.round_dir(r) / "lightly"

    def predictions(self, r: int) -> Path:
        return self.round_lightly(r) / ".lightly" / "predictions"

    def mc_probs(self, r: int) -> Path:
        return self.round_dir(r) / "mc_probs.npy"

    def classifier_embeddings(self, r: int) -> Path:
        return self.round_dir(r) / "embeddings-classifier.npy"

    def runtime(self, r: int) -> Path:
        """The numerics round r trained with (threads, kernels, CPU: bpsrun.numerics.runtime)."""
        return self.round_dir(r) / "runtime.json"

    def confusion_png(self, r: int) -> Path:
        return self.round_dir(r) / "confusion.png"

    def picks_png(self, r: int) -> Path:
        return self.round_dir(r) / "picks.png"

    def read_state(self, path: Path) -> Any:
        """A JSON state file the campaign wrote; damaged (hand-edited, truncated) is a message naming the fix."""
        try:
            return json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BpsrunError(
                f"{path}: the campaign's state file is damaged ({type(exc).__name__}: {exc}); delete it (or its "
                f"round folder {path.parent.name}/) and rerun: the stage that writes it runs again"
            ) from None

    def read_selected(self, r: int) -> list[str]:
        return self.selected(r).read_text().splitlines()

    def labeled_before(self, r: int) -> list[str]:
        """Every file picked in rounds 1 .. r-1, in pick order."""
        return [f for k in range(1, r) for f in self.read_selected(k)]
