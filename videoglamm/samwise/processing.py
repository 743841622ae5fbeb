"""SAMWISE input processing: captions to RoBERTa tokens, frames to padded SAM2 inputs, logits back.

Frames follow SAMWISE (SAM1-style), not the SAM2 package: the longer side is resized to S keeping the
aspect ratio, ImageNet-normalised, then zero-padded bottom/right to S x S. Predictions are upsampled to
S x S, cropped to the resized region and resized to the original frame size.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from videoglamm.errors import InputError
from videoglamm.processing.transforms import _normalise, _to_float_nchw

logger = logging.getLogger(__name__)


def normalise_caption(caption: str) -> str:
    """Lower-case and collapse whitespace, as SAMWISE does for every expression."""
    return re.sub(r"\s+", " ", caption.strip().lower())


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h', w') after resizing the longer side to `size`, aspect kept."""
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def pad_transform(frames: Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> tuple[Tensor, tuple[int, int]]:
    """(T, H, W, 3) uint8 -> ((T, 3, size, size) float, (h', w') the valid region).

    Raises:
        InputError: frames are not (T, H, W, 3) uint8.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise InputError(f"frames must be uint8 (T, H, W, 3); got {frames.dtype} {tuple(frames.shape)}")
    h, w = resized_size(int(frames.shape[1]), int(frames.shape[2]), size)
    x = F.interpolate(_to_float_nchw(frames), size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    x = _normalise(x, mean, std)
    return F.pad(x, (0, size - w, 0, size - h)), (h, w)


def postprocess_logits(low_res: Tensor, image_size: int, valid: tuple[int, int], original: tuple[int, int]) -> Tensor:
    """Mask logits (..., s, s) -> (..., H, W) at the original frame size (threshold afterwards).

    Args:
        low_res: (..., s, s) decoder logits.
        image_size: S, the padded SAM2 input size.
        valid: (h', w') resized region inside the padded input.
        original: (H, W).
    """
    lead = low_res.shape[:-2]
    x = low_res.reshape(-1, 1, *low_res.shape[-2:]).float()
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = x[..., : valid[0], : valid[1]]
    x = F.interpolate(x, size=tuple(original), mode="bilinear", align_corners=False)
    return x.reshape(*lead, *original)


@dataclass
class TextBatch:
    """Tokenized captions.

    Attributes:
        input_ids: (B, L) token ids.
        padding: (B, L) bool, True on padding.
        offsets: (B, L, 2) character offsets (for the motion prompt).
        captions: the normalised captions.
    """

    input_ids: Tensor
    padding: Tensor
    offsets: Tensor
    captions: list[str]

    def to(self, device: torch.device | str) -> "TextBatch":
        return TextBatch(self.input_ids.to(device), self.padding.to(device), self.offsets, self.captions)


def tokenize(tokenizer: Any, captions: Sequence[str], max_length: int) -> TextBatch:
    """Tokenize B captions with padding (RoBERTa's `<s> ... </s>`).

    Raises:
        InputError: no captions, or an empty caption.
    """
    if not captions:
        raise InputError("no text prompt given: pass at least one referring expression")
    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise InputError(f"text prompt {i} must be a string, got {type(caption).__name__} ({caption!r:.60})")
    normalised = [normalise_caption(c) for c in captions]
    empty = [i for i, c in enumerate(normalised) if not c]
    if empty:
        raise InputError(f"text prompts {empty} are empty; every prompt must describe an object")
    lengths = [len(ids) for ids in tokenizer(normalised)["input_ids"]]
    cut = [i for i, n in enumerate(lengths) if n > max_length]
    if cut:  # the text encoder's positions end there; say so rather than drop words silently
        logger.warning("text prompt(s) %s have %s tokens, more than the text encoder's max_length %d: the prompt "
                       "is truncated to its first %d tokens", cut, [lengths[i] for i in cut], max_length, max_length)
    enc = tokenizer(normalised, padding=True, truncation=True, max_length=max_length,
                    return_offsets_mapping=True, return_tensors="pt")
    return TextBatch(enc["input_ids"], enc["attention_mask"] == 0, enc["offset_mapping"], normalised)
