"""SAMWISE input processing: captions to RoBERTa tokens, frames to padded SAM2 inputs, logits back.

Frames follow SAMWISE (SAM1-style), not the SAM2 package: an aspect-preserving resize, ImageNet
normalisation, then zero padding bottom/right to S x S. At inference the official resize is torchvision's
`Resize(1020, max_size=1024)` on PIL images (`inference.resize_short_side`; a square frame becomes
1020 x 1020); `short_side=None` resizes the longer side to S (the training-time shape). Predictions are
upsampled to S x S, cropped to the resized region and resized to the original frame size.

Captions: the official training lower-cases and collapses whitespace; inference feeds the prompt as
given. Nothing is truncated unless `text.max_length` asks for it; a caption longer than RoBERTa's position
table is an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from videoglamm.errors import InputError
from videoglamm.processing.transforms import normalise, to_float_nchw


def normalise_caption(caption: str) -> str:
    """Lower-case and collapse whitespace, as the official SAMWISE training data does."""
    return re.sub(r"\s+", " ", caption.strip().lower())


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h', w') after resizing the longer side to `size`, aspect kept."""
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize_like_torchvision_pil(frames: Tensor, short_side: int, max_size: int) -> Tensor:
    """torchvision `Resize(short_side, max_size=max_size)` on each frame as a PIL image, then `ToTensor`.

    The official evaluation dataset resizes PIL images, so PIL's bilinear filter (antialiased) is used
    rather than a tensor kernel, which differs from it by up to one grey level.
    """
    import torchvision.transforms.functional as TF
    from PIL import Image

    out = []
    for frame in frames.cpu().numpy():
        resized = TF.resize(Image.fromarray(frame), [short_side], interpolation=TF.InterpolationMode.BILINEAR,
                            max_size=max_size)
        out.append(TF.pil_to_tensor(resized))
    return torch.stack(out).to(frames.device).float().div_(255.0)


def pad_transform(frames: Tensor, size: int, mean: Sequence[float], std: Sequence[float],
                  short_side: int | None = None) -> tuple[Tensor, tuple[int, int]]:
    """(T, H, W, 3) uint8 -> ((T, 3, size, size) float, (h', w') the valid region).

    Args:
        frames: uint8 frames.
        size: S, the padded SAM2 input size.
        mean, std: normalisation.
        short_side: None resizes the longer side to S; an int applies torchvision's
            `Resize(short_side, max_size=S)` (the official inference resize, 1020 at S = 1024).

    Raises:
        InputError: frames are not (T, H, W, 3) uint8, or `short_side` is not below S.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise InputError(f"frames must be uint8 (T, H, W, 3); got {frames.dtype} {tuple(frames.shape)}")
    if short_side is None:
        h, w = resized_size(int(frames.shape[1]), int(frames.shape[2]), size)
        x = F.interpolate(to_float_nchw(frames), size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    else:
        if not 1 <= short_side < size:
            raise InputError(f"short_side {short_side} must be in [1, {size}) for a {size} px input")
        x = _resize_like_torchvision_pil(frames, short_side, size)
        h, w = int(x.shape[-2]), int(x.shape[-1])
    x = normalise(x, mean, std)
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
        captions: the captions as tokenized (normalised in training).
    """

    input_ids: Tensor
    padding: Tensor
    offsets: Tensor
    captions: list[str]

    def to(self, device: torch.device | str) -> "TextBatch":
        return TextBatch(self.input_ids.to(device), self.padding.to(device), self.offsets, self.captions)


def max_text_tokens(text_config: Any) -> int:
    """Most tokens (with `<s>` and `</s>`) RoBERTa can place: its positions start after `pad_token_id`.

    Args:
        text_config: a `TextEncoderConfig` (512 for RoBERTa-base's 514 positions).
    """
    return int(text_config.max_position_embeddings) - int(text_config.pad_token_id) - 1


def tokenize(tokenizer: Any, captions: Sequence[str], max_tokens: int, *, truncate_to: int | None = None,
             normalise: bool = False) -> TextBatch:
    """Tokenize B captions with padding (RoBERTa's `<s> ... </s>`).

    Args:
        tokenizer: a fast tokenizer.
        captions: the captions.
        max_tokens: the text encoder's limit (`max_text_tokens`); longer captions are an error.
        truncate_to: cut every caption to this many tokens first (None: no truncation, as official).
        normalise: lower-case and collapse whitespace (`normalise_caption`), as official training does.

    Raises:
        InputError: no captions, an empty caption, or one longer than `max_tokens` tokens.
    """
    if not captions:
        raise InputError("no text prompt given: pass at least one referring expression")
    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise InputError(f"text prompt {i} must be a string, got {type(caption).__name__} ({caption!r:.60})")
    texts = [normalise_caption(c) if normalise else c for c in captions]
    empty = [i for i, c in enumerate(texts) if not c.strip()]
    if empty:
        raise InputError(f"text prompts {empty} are empty; every prompt must describe an object")
    cut = {"truncation": True, "max_length": truncate_to} if truncate_to is not None else {"truncation": False}
    enc = tokenizer(texts, padding=True, return_offsets_mapping=True, return_tensors="pt", **cut)
    lengths = enc["attention_mask"].sum(1)
    too_long = [(i, int(n)) for i, n in enumerate(lengths) if n > max_tokens]
    if too_long:
        raise InputError(f"text prompts {[i for i, _ in too_long]} have {[n for _, n in too_long]} tokens; the text "
                         f"encoder takes at most {max_tokens} (its position table): shorten them, or set "
                         "text.max_length to truncate")
    return TextBatch(enc["input_ids"], enc["attention_mask"] == 0, enc["offset_mapping"], texts)


def tokenize_captions(tokenizer: Any, config: Any, captions: Sequence[str], training: bool) -> TextBatch:
    """Tokenize captions the way a `SAMWISEConfig` says: lower-cased in training, as given at inference.

    Args:
        tokenizer: the model's tokenizer.
        config: `SAMWISEConfig` (`text.max_length`, `inference.normalise_prompts`, the position limit).
        captions: the captions.
        training: True for training batches (always normalised, as the official datasets do).
    """
    return tokenize(tokenizer, captions, max_text_tokens(config.text), truncate_to=config.text.max_length,
                    normalise=training or config.inference.normalise_prompts)
