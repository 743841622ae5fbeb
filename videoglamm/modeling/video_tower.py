"""InternVideo2 vision encoder (the frozen video tower of VideoGLaMM).

Only the patch embedding, the CLS token, the video position embedding and the first `feature_block`
blocks are built: VideoGLaMM reads the output of block 39 of 40 with no final norm, so block 40, the
single-image position embedding and the distillation heads of the released file are never run. The
converter (`videoglamm.convert.internvideo2`) drops them through a named allow-list.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from videoglamm.config import VideoTowerConfig
from videoglamm.errors import InputError, ShapeMismatchError


class RMSNorm(nn.Module):
    """Weight-only RMS norm, normalised in float32 (as InternVideo2's non-fused RMSNorm)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention with bias-free fused qkv and RMS qk-norm over the full width."""

    def __init__(self, width: int, heads: int, qk_norm: bool, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        # The norms act on the flattened (all heads) q and k vectors, not per head.
        self.q_norm = RMSNorm(width, eps) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(width, eps) if qk_norm else nn.Identity()
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, width) -> (N, L, width)."""
        n, length, width = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.view(n, length, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)  # default scale = head_dim ** -0.5, as InternVideo2
        return self.proj(out.transpose(1, 2).reshape(n, length, width))


class Block(nn.Module):
    """Pre-norm transformer block with layer scale on both residual branches."""

    def __init__(self, cfg: VideoTowerConfig) -> None:
        super().__init__()
        w = cfg.width
        self.norm1 = RMSNorm(w, cfg.norm_eps)
        self.attn = Attention(w, cfg.heads, cfg.qk_norm, cfg.norm_eps)
        # Named *_layer_scale, not `gamma`: transformers 4.x renames `gamma` keys to `weight` on load.
        self.attn_layer_scale = nn.Parameter(torch.full((w,), cfg.layer_scale_init))
        self.norm2 = RMSNorm(w, cfg.norm_eps)
        self.mlp = nn.Sequential()
        self.mlp.add_module("fc1", nn.Linear(w, cfg.mlp_hidden))
        self.mlp.add_module("act", nn.GELU())  # exact (erf) GELU
        self.mlp.add_module("fc2", nn.Linear(cfg.mlp_hidden, w))
        self.mlp_layer_scale = nn.Parameter(torch.full((w,), cfg.layer_scale_init))

    @staticmethod
    def _scale(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        # The released model multiplies the layer scale in float32 (matters under fp16/bf16).
        return (x.float() * scale.float()).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, width) -> (N, L, width)."""
        x = x + self._scale(self.attn(self.norm1(x)), self.attn_layer_scale)
        return x + self._scale(self.mlp(self.norm2(x)), self.mlp_layer_scale)


class VideoTower(nn.Module):
    """Frozen InternVideo2 encoder returning per-frame patch features of block `feature_block`.

    Args:
        config: the `VideoTowerConfig`.
    """

    def __init__(self, config: VideoTowerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.patch_embed = nn.Conv3d(
            3, c.width, kernel_size=(c.tubelet_size, c.patch_size, c.patch_size),
            stride=(c.tubelet_size, c.patch_size, c.patch_size),
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.width))
        # CLS position first, then num_frames x grid x grid patches, frame-major then row-major.
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + c.num_frames * c.grid**2, c.width))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.feature_block))
        self.requires_grad_(False)

    def embed(self, segments: torch.Tensor) -> torch.Tensor:
        """Tokens entering block 1.

        Args:
            segments: (N, num_frames, 3, S, S) normalised frames, one segment per row.

        Returns:
            (N, 1 + num_frames * grid**2, width): CLS then patch tokens, position embedding added.
        """
        x = self.patch_embed(segments.transpose(1, 2))  # (N, width, num_frames, grid, grid)
        x = x.flatten(2).transpose(1, 2)  # frame-major, then row-major within a frame
        cls = self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype)
        return torch.cat([cls, x], dim=1) + self.pos_embed.to(x.dtype)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode a batch of videos segment by segment.

        Args:
            frames: (B, T, 3, S, S) normalised frames; T a multiple of `num_frames`, S = `image_size`.

        Returns:
            (B, T, grid*grid, width): output of block `feature_block` (no final norm), CLS dropped.

        Raises:
            ShapeMismatchError: `frames` is not (B, T, 3, image_size, image_size).
            InputError: T is not a multiple of `num_frames`.
        """
        c = self.config
        if frames.dim() != 5 or frames.shape[2] != 3 or frames.shape[3:] != (c.image_size, c.image_size):
            raise ShapeMismatchError(
                f"video tower expects frames of shape (B, T, 3, {c.image_size}, {c.image_size}), "
                f"got {tuple(frames.shape)}"
            )
        b, t = frames.shape[:2]
        if t % c.num_frames != 0:
            raise InputError(
                f"video tower got {t} frames; the count must be a multiple of num_frames={c.num_frames}"
            )
        # Fold segments into the batch: each segment of num_frames frames is encoded independently.
        segments = frames.reshape(b * (t // c.num_frames), c.num_frames, *frames.shape[2:])
        x = self.embed(segments.to(self.patch_embed.weight.dtype))
        for block in self.blocks:
            x = block(x)
        return x[:, 1:].reshape(b, t, c.grid**2, c.width)


def build_video_tower(cfg: VideoTowerConfig) -> VideoTower:
    """Build the frozen InternVideo2 video tower (random weights; load them with the converter).

    Args:
        cfg: the `VideoTowerConfig`.

    Returns:
        A `VideoTower` with `cfg.feature_block` blocks, every parameter frozen.
    """
    return VideoTower(cfg)
