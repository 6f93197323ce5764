"""Classifier networks for single-channel nuclei. None downloads weights."""

from __future__ import annotations

import torch
import torchvision
from torch import nn


class SimpleCNN(nn.Module):
    """The tutorial's LeNet-like CNN (conv 6 k5, maxpool 4, conv 16 k4, maxpool 4, fc 120, 84), on one channel."""

    def __init__(self, num_classes: int = 2, in_channels: int = 1, image_size: int = 128, dropout: float = 0.0):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(4),
            nn.Conv2d(6, 16, 4), nn.ReLU(), nn.MaxPool2d(4),
            nn.Flatten(),
        )  # fmt: skip
        flat = self.features(torch.zeros(1, in_channels, image_size, image_size)).shape[1]
        self.head = nn.Sequential(
            nn.Linear(flat, 120), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(120, 84), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(84, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head[:-1](self.features(x))


class SmallConvNet(nn.Module):
    """Four conv-BN-ReLU blocks and global pooling: small enough for CPU, translation-robust for foci."""

    def __init__(self, num_classes: int = 2, in_channels: int = 1, width: int = 16, dropout: float = 0.2):
        super().__init__()
        chans = [in_channels, width, 2 * width, 4 * width, 4 * width]
        blocks: list[nn.Module] = []
        for cin, cout in zip(chans, chans[1:]):
            blocks += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(chans[-1], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class ResNet18(nn.Module):
    """torchvision's ResNet-18 with a one-channel stem, randomly initialised."""

    def __init__(self, num_classes: int = 2, in_channels: int = 1):
        super().__init__()
        net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.head = net.fc
        net.fc = nn.Identity()
        self.features = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class ProbeHead(nn.Module):
    """Logits from frozen features: standardised (by the training set's mean and spread, kept as buffers so a saved
    head predicts alone), then dropout and a linear layer, or a small MLP with `hidden` units."""

    def __init__(
        self,
        mean: torch.Tensor,
        scale: torch.Tensor,
        num_classes: int = 2,
        hidden: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("scale", scale.float())
        dim = mean.numel()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout)]
            dim = hidden
        out = nn.Linear(dim, num_classes)
        nn.init.zeros_(out.weight)  # start from no preference: steps go to the features that separate the labels
        nn.init.zeros_(out.bias)
        self.layers = nn.Sequential(*layers, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x - self.mean) / self.scale)


class FineTuneNet(nn.Module):
    """A pretrained backbone (e.g. the SimCLR one) and a new linear head, trained together; the backbone's rate is
    `backbone_lr_scale` times the head's, so a few noisy labels do not wash out what it learned."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int = 2,
        in_channels: int = 1,
        image_size: int = 96,
        dropout: float = 0.2,
        backbone_lr_scale: float = 0.1,
    ):
        super().__init__()
        self.features = backbone.requires_grad_(True)
        with torch.no_grad():
            dim = backbone.eval()(torch.zeros(1, in_channels, image_size, image_size)).shape[1]
        backbone.train()  # Lightning keeps submodules' modes: batch norm must learn this task's statistics
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_classes))
        self.backbone_lr_scale = backbone_lr_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def param_groups(self) -> list[dict]:
        return [
            {"params": list(self.features.parameters()), "lr_scale": self.backbone_lr_scale},
            {"params": list(self.head.parameters())},
        ]
