"""Per-encoder frame transforms on uint8 tensors (T, H, W, 3).

- CLIP: shortest side to `size` (bicubic), center crop, CLIP mean/std (as `CLIPImageProcessor` does).
- InternVideo2: stretched resize to `size` x `size`, ImageNet mean/std.
- SAM2: stretched resize to `size` x `size` (the official net effect of resize-longest + interpolate),
  ImageNet mean/std.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def _normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    mean_t = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


def _to_float_nchw(frames: torch.Tensor) -> torch.Tensor:
    return frames.permute(0, 3, 1, 2).float().div_(255.0)


def clip_transform(frames: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, size, size) float: shortest side to `size`, center crop."""
    x = _to_float_nchw(frames)
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True).clamp_(0, 1)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    x = x[..., top : top + size, left : left + size]
    return _normalise(x, mean, std)


def stretch_transform(frames: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, size, size) float: stretched (aspect not kept), bilinear."""
    x = _to_float_nchw(frames)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return _normalise(x, mean, std)
