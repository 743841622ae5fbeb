"""Per-encoder frame transforms on uint8 tensors (T, H, W, 3), with the libraries the official code calls.

- CLIP: `transformers`' PIL `CLIPImageProcessor` (shortest side to `size`, bicubic, centre crop, CLIP
  mean/std), as the official `EncPreprocessor_VideoGPTPlus` uses it.
- InternVideo2: `cv2.resize` to `size` x `size` (INTER_LINEAR, stretched), then ImageNet mean/std in float64,
  as the official `VideoTrainProcessor`.
- SAM2: the longest side to `size` with PIL bilinear (SAM's `ResizeLongestSide.apply_image`), normalised on
  the 0-255 scale, then bilinearly interpolated to `size` x `size` (the official `sam_preprocess(...,
  "sam2")`: a net anisotropic stretch, in two steps whose rounding the weights were trained with).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def to_float_nchw(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (T, 3, H, W) in [0, 1]."""
    return frames.permute(0, 3, 1, 2).float().div_(255.0)


def normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(T, 3, H, W) -> (x - mean) / std per channel."""
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


@lru_cache(maxsize=8)
def _clip_processor(size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    try:  # transformers >= 5: the PIL implementation has its own name (CLIPImageProcessor is torchvision's)
        from transformers import CLIPImageProcessorPil as processor_class
    except ImportError:  # transformers 4.x: CLIPImageProcessor is the PIL implementation
        from transformers import CLIPImageProcessor as processor_class
    return processor_class(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                           image_mean=list(mean), image_std=list(std))


def clip_transform(frames: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, size, size) float32 through `CLIPImageProcessor` (PIL)."""
    from PIL import Image

    processor = _clip_processor(int(size), tuple(mean), tuple(std))
    images = [Image.fromarray(frame) for frame in frames.numpy()]
    return processor(images=images, return_tensors="pt")["pixel_values"].float()


def internvideo_transform(frames: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, size, size) float32: `cv2.resize` (bilinear, no antialiasing), stretched."""
    import cv2

    resized = np.stack([cv2.resize(frame, (size, size), interpolation=cv2.INTER_LINEAR) for frame in frames.numpy()])
    x = (resized / 255.0 - np.asarray(mean).reshape(1, 1, 1, 3)) / np.asarray(std).reshape(1, 1, 1, 3)
    return torch.from_numpy(x).permute(0, 3, 1, 2).float().contiguous()


def longest_side_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """(H, W) with the longer side `size`, each side rounded half up (SAM's `get_preprocess_shape`)."""
    scale = size * 1.0 / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def sam2_transform(frames: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, size, size) float32: PIL bilinear to the longest side, normalise, stretch."""
    from PIL import Image
    from torchvision.transforms.functional import resize

    h, w = int(frames.shape[1]), int(frames.shape[2])
    target = longest_side_shape(h, w, size)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1) * 255.0
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1) * 255.0
    out = torch.empty(frames.shape[0], 3, size, size)
    for i, frame in enumerate(frames.numpy()):
        x = torch.from_numpy(np.array(resize(Image.fromarray(frame), list(target)))).permute(2, 0, 1)
        x = (x - mean_t) / std_t
        out[i] = F.interpolate(x[None], (size, size), mode="bilinear")[0]
    return out
