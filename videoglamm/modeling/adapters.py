"""V->L adapters: a 2-layer GELU MLP per vision tower, then adaptive average pooling per frame."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from videoglamm.errors import ShapeMismatchError


class VisionAdapter(nn.Module):
    """Projects square grids of patch features into the LLM width and pools each frame to `pool x pool`.

    Args:
        in_dim: width of the tower features.
        out_dim: LLM hidden size.
        pool: side of the pooled grid (the official model pools after projecting).
    """

    def __init__(self, in_dim: int, out_dim: int, pool: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(out_dim, out_dim)
        self.pool = pool

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Args:
            features: (N, g*g, in_dim) patch tokens of N frames, row-major on a g x g grid.

        Returns:
            (N, pool*pool, out_dim).
        """
        n, tokens, _ = features.shape
        grid = math.isqrt(tokens)
        if grid * grid != tokens:
            raise ShapeMismatchError(f"adapter expects a square grid of tokens per frame, got {tokens}")
        x = self.fc2(self.act(self.fc1(features)))
        x = x.transpose(1, 2).reshape(n, -1, grid, grid)
        x = F.adaptive_avg_pool2d(x, self.pool)
        return x.flatten(2).transpose(1, 2)
