"""embedding=classifier: penultimate-layer features of the previous round's model. Round 1 has no model yet, so it
uses the self-supervised embedding built from the same settings, whose backbone is also the one learners build on."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from bpsrun.embed.base import EmbedContext
from bpsrun.embed.selfsup import SSLEmbedding
from bpsrun.files import cached_npy


class ClassifierFeatures:
    def __init__(self, context: EmbedContext, image_size: int, **simclr: Any):
        self.context = context
        self.first_round = SSLEmbedding(context, image_size, **simclr)
        self.image_size = self.first_round.image_size

    def embed(self, round_: int) -> np.ndarray:
        if round_ == 1:
            return self.first_round.embed(round_)
        ctx, r = self.context, round_ - 1

        def compute() -> np.ndarray:
            learner = ctx.round_learner(r)
            return learner.features(ctx.pool_images(learner.image_size))

        return cached_npy(ctx.layout.classifier_embeddings(r), compute)

    def backbone(self) -> nn.Module:
        return self.first_round.backbone()
