"""embedding=pixels: the pool's downsampled raw pixels, projected on their principal components.

The trivial baseline a learned embedding has to beat (under the same probe) to be worth selecting on. It takes
a second to compute, so it is recomputed rather than cached; the PCA is exact (an SVD), so no seed is needed.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch
from torch import nn

from bpsrun.embed.base import EmbedContext


class PixelPCA(nn.Module):
    """Images -> coordinates of their centred pixels on fixed principal axes."""

    def __init__(self, mean: torch.Tensor, axes: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.float())  # (pixels,)
        self.register_buffer("axes", axes.float())  # (components, pixels), orthonormal rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) - self.mean) @ self.axes.T


def principal_axes(x: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the top principal axes of the rows of `x`, each axis signed so its largest entry is positive."""
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = vt[:components]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return mean, axes * signs[:, None]


class PixelsEmbedding:
    def __init__(self, context: EmbedContext, image_size: int, components: int):
        self.context, self.image_size, self.components = context, int(image_size), int(components)

    @cached_property
    def pca(self) -> PixelPCA:
        stack = self.context.pool_images(self.image_size)
        mean, axes = principal_axes(stack.reshape(len(stack), -1).astype(np.float64), self.components)
        return PixelPCA(torch.from_numpy(mean), torch.from_numpy(axes)).eval()

    def embed(self, round_: int) -> np.ndarray:
        with torch.no_grad():
            return self.pca(torch.from_numpy(self.context.pool_images(self.image_size)).float()).numpy()

    def backbone(self) -> nn.Module:
        return self.pca
