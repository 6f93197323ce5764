"""Self-supervised objectives: what the backbone learns from two augmented views of each image (lightly's losses
and heads). One is chosen by `embedding/method=` (conf/embedding/method/), built as `_target_(backbone, feature_dim, **keys)`:
the network it trains and its output width (a momentum method copies the network as its target).

An objective is an nn.Module (its heads train with the backbone, and its state is saved in the same checkpoint)
with `loss(backbone, view0, view1)`; `step_done(backbone, progress)` runs after each optimiser step, for methods
with a momentum target. Only the backbone is kept afterwards: every objective leaves the same network to embed with.
"""

from __future__ import annotations

import copy
from typing import Protocol

import torch
from lightly.loss import DINOLoss, NegativeCosineSimilarity, NTXentLoss, VICRegLoss
from lightly.models.modules.heads import (
    BYOLPredictionHead,
    BYOLProjectionHead,
    DINOProjectionHead,
    SimCLRProjectionHead,
    VICRegProjectionHead,
)
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import nn


class Objective(Protocol):
    def loss(self, backbone: nn.Module, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor: ...

    def step_done(self, backbone: nn.Module, progress: float) -> None:
        """After an optimiser step; `progress` is the share of training done (0..1)."""
        ...


class SimCLRObjective(nn.Module):
    """SimCLR: NT-Xent contrast of each view against the batch's other images (negatives from the batch)."""

    def __init__(self, backbone: nn.Module, feature_dim: int, dim: int = 64, temperature: float = 0.5):
        super().__init__()
        self.head = SimCLRProjectionHead(input_dim=feature_dim, hidden_dim=feature_dim, output_dim=dim)
        self.criterion = NTXentLoss(temperature=temperature)

    def loss(self, backbone: nn.Module, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.head(backbone(view0)), self.head(backbone(view1)))

    def step_done(self, backbone: nn.Module, progress: float) -> None:
        pass


class BYOLObjective(nn.Module):
    """BYOL: an online network predicts a momentum (EMA) target network's projection of the other view; no
    negatives, so small batches cost it nothing."""

    def __init__(
        self, backbone: nn.Module, feature_dim: int, dim: int = 64, hidden_dim: int = 256, momentum: float = 0.99
    ):
        super().__init__()
        self.target_backbone = copy.deepcopy(backbone)
        deactivate_requires_grad(self.target_backbone)
        self.projection = BYOLProjectionHead(feature_dim, hidden_dim, dim)
        self.prediction = BYOLPredictionHead(dim, hidden_dim, dim)
        self.target_projection = copy.deepcopy(self.projection)
        deactivate_requires_grad(self.target_projection)
        self.criterion = NegativeCosineSimilarity()
        self.momentum = momentum

    def loss(self, backbone: nn.Module, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        p0 = self.prediction(self.projection(backbone(view0)))
        p1 = self.prediction(self.projection(backbone(view1)))
        with torch.no_grad():
            t0 = self.target_projection(self.target_backbone(view0))
            t1 = self.target_projection(self.target_backbone(view1))
        return 0.5 * (self.criterion(p0, t1) + self.criterion(p1, t0))

    def step_done(self, backbone: nn.Module, progress: float) -> None:
        m = cosine_schedule(round(1000 * progress), 1000, self.momentum, 1.0)  # towards a frozen target at the end
        update_momentum(backbone, self.target_backbone, m)
        update_momentum(self.projection, self.target_projection, m)


class VICRegObjective(nn.Module):
    """VICReg: the two views' projections agree (invariance) while each dimension keeps its variance and the
    dimensions stay decorrelated; no negatives and no momentum network."""

    def __init__(
        self, backbone: nn.Module, feature_dim: int, dim: int = 256, hidden_dim: int = 256, num_layers: int = 2
    ):
        super().__init__()
        self.head = VICRegProjectionHead(feature_dim, hidden_dim, dim, num_layers=num_layers)
        self.criterion = VICRegLoss()

    def loss(self, backbone: nn.Module, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.head(backbone(view0)), self.head(backbone(view1)))

    def step_done(self, backbone: nn.Module, progress: float) -> None:
        pass


class DINOObjective(nn.Module):
    """DINO: a student's softmax over prototypes matches a momentum teacher's sharpened, centred one on the other
    view. Two global views only (bpsrun's augmentation makes two): no multi-crop, which the DINO paper adds."""

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        dim: int = 256,
        hidden_dim: int = 256,
        bottleneck_dim: int = 64,
        teacher_temp: float = 0.04,
        momentum: float = 0.996,
    ):
        super().__init__()
        self.head = DINOProjectionHead(feature_dim, hidden_dim, bottleneck_dim, dim)
        self.teacher_backbone = copy.deepcopy(backbone)
        self.teacher_head = DINOProjectionHead(feature_dim, hidden_dim, bottleneck_dim, dim)  # weight_norm: no deepcopy
        self.teacher_head.load_state_dict(self.head.state_dict())
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)
        # warmup_teacher_temp_epochs=0: no schedule by epoch (training is a few epochs); the centre is a buffer, so
        # it is saved and resumed with the checkpoint
        self.criterion = DINOLoss(dim, teacher_temp, teacher_temp, warmup_teacher_temp_epochs=0)
        self.momentum = momentum

    def loss(self, backbone: nn.Module, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher = [self.teacher_head(self.teacher_backbone(v)) for v in (view0, view1)]
        student = [self.head(backbone(v)) for v in (view0, view1)]
        return self.criterion(teacher, student)

    def step_done(self, backbone: nn.Module, progress: float) -> None:
        m = cosine_schedule(round(1000 * progress), 1000, self.momentum, 1.0)
        update_momentum(backbone, self.teacher_backbone, m)
        update_momentum(self.head, self.teacher_head, m)
