"""A round's model as an MLflow pyfunc model: the campaign's own learner and image decoding, packed with their inputs.

Artifacts: the round's `model.pt`, the campaign's resolved config (secrets dropped) and, for learners that build on
the embedding's network (model=linear_probe, model=finetune), that network. `load_context` builds the learner from
the config as the campaign does (bpsrun.context.Context.learner) and loads the weights, and images are decoded by the
campaign's `load_stack`, so a prediction equals the campaign's Lightly export for the same image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
from omegaconf import OmegaConf
from torch import nn

from bpsrun.data.images import load_stack
from bpsrun.embed.encoder import Encoder
from bpsrun.errors import BpsrunError
from bpsrun.model.learner import Learner
from bpsrun.model.trainers import Trainers
from bpsrun.plugins import build

MODEL, CONFIG, BACKBONE = "model", "config", "backbone"  # artifact keys


def quiet_artifact_copies() -> None:
    """MLflow draws a tqdm bar for every artifact it copies, in carriage-return frames even into a log file
    (bpsrun.progress writes lines): off, unless the environment says otherwise."""
    os.environ.setdefault(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name, "false")


def save_backbone(encoder: Encoder, path: Path) -> None:
    """The encoder's frozen network as a whole module (any embedding's network, whatever its class) and its input
    size: what SavedBackbone gives back."""
    torch.save({"image_size": encoder.image_size, "net": encoder.net}, path)


class SavedBackbone:
    """The embedding's network as packed with a model: a `Backbone` (bpsrun.embed.encoder) with no embedding behind."""

    def __init__(self, path: Path):
        saved = torch.load(path, map_location="cpu", weights_only=False)  # a module: written by save_backbone only
        self.image_size: int = int(saved["image_size"])
        self.net: nn.Module = saved["net"]

    def backbone(self) -> nn.Module:
        return self.net


class RoundModel(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with a `path` column of image files, or an N x 1 x S x S array decoded as the campaign does
    (S = the learner's image_size). Output: one probability column per class, and `label`, the most likely class."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        cfg = OmegaConf.load(context.artifacts[CONFIG])
        # it runs where it is used, not where it was trained: one device, whichever this machine has
        cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.strategy = "auto", 1, "auto"
        self.classes: list[str] = list(cfg.task.classes)
        trainers = Trainers(cfg.trainer)
        parts: dict[str, Any] = {}
        if BACKBONE in context.artifacts:
            saved = SavedBackbone(Path(context.artifacts[BACKBONE]))
            parts["encoder"] = Encoder(lambda: saved, trainers)
        self.learner: Learner = build(cfg.model, "model", parts, num_classes=len(self.classes), trainers=trainers)
        self.learner.load(Path(context.artifacts[MODEL]))

    def inputs(self, data: Any) -> np.ndarray:
        size = self.learner.image_size
        if isinstance(data, pd.DataFrame):
            if "path" not in data.columns:
                raise BpsrunError(
                    f"model input: a table needs a `path` column of image files; it has {list(data.columns)}"
                )
            return load_stack([Path(p) for p in data["path"]], size, desc="decoding images")
        x = np.asarray(data)
        if x.ndim != 4 or x.shape[1:] != (1, size, size):
            raise BpsrunError(
                f"model input: an array of shape {x.shape}; give N x 1 x {size} x {size} images decoded by "
                f"bpsrun.data.images.load_stack, or a table with a `path` column"
            )
        return x

    # model_input may be an array too: MLflow reads a DataFrame hint as "no schema" and passes any input through
    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params: Any = None
    ) -> pd.DataFrame:
        x = self.inputs(model_input)
        probs = self.learner.predict_proba(x) if len(x) else np.empty((0, len(self.classes)))
        out = pd.DataFrame(probs, columns=self.classes, index=getattr(model_input, "index", None))
        out["label"] = [self.classes[k] for k in probs.argmax(axis=1)]
        return out
