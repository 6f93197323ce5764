"""embedding=pixels: the pool's downsampled raw pixels, projected on their principal components.

The trivial baseline a learned embedding has to beat (under the same probe) to be worth selecting on. It takes
a second to compute, so it is recomputed rather than cached; the PCA is exact (the eigenvectors of the pixel
covariance, accumulated over the pool a chunk at a time), so no seed is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def principal_axes(chunks: Iterable[np.ndarray], components: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the top principal axes of the rows of the chunks (read once, in bounded memory: the mean and the
    pixel covariance are accumulated), each axis signed so its largest entry is positive."""
    n, total, gram = 0, None, None
    for chunk in chunks:
        x = chunk.reshape(len(chunk), -1).astype(np.float64)
        total = x.sum(axis=0) if total is None else total + x.sum(axis=0)
        gram = x.T @ x if gram is None else gram + x.T @ x
        n += len(x)
    mean = total / n
    values, vectors = np.linalg.eigh(gram / n - np.outer(mean, mean))  # ascending
    axes = vectors[:, ::-1][:, :components].T
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return mean, axes * signs[:, None]


class PixelsEmbedding:
    def __init__(self, context: EmbedContext, image_size: int, components: int):
        self.context, self.image_size, self.components = context, int(image_size), int(components)

    @cached_property
    def pca(self) -> PixelPCA:
        mean, axes = principal_axes(self.context.pool_images(self.image_size).chunks(), self.components)
        return PixelPCA(torch.from_numpy(mean), torch.from_numpy(axes)).eval()

    def embed(self, round_: int) -> np.ndarray:
        with torch.no_grad():
            return self.context.pool_images(self.image_size).map(
                lambda x: self.pca(torch.from_numpy(x).float()).numpy()
            )

    def backbone(self) -> nn.Module:
        return self.pca
