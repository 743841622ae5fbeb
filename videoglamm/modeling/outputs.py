"""Output dataclasses with documented shapes."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class VideoGLaMMOutput:
    """What `VideoGLaMM.forward` returns.

    Attributes:
        loss: ce_weight * lm_loss + bce_weight * mask_bce_loss + dice_weight * mask_dice_loss (None without labels).
        lm_loss: next-token cross-entropy over answer tokens.
        mask_bce_loss, mask_dice_loss: mean over real (mask, SAM frame) pairs; 0 when no mask is supervised.
        logits: (B, L, vocab).
        pred_masks: per sample, mask logits (num_seg, Ts, H, W) at the original resolution (empty list
            entries when masks were not requested).
        seg_embeddings: per sample, the projected `[SEG]` prompts (num_seg, D).
        last_hidden_state: (B, L, hidden).
    """

    loss: torch.Tensor | None
    lm_loss: torch.Tensor | None
    mask_bce_loss: torch.Tensor | None
    mask_dice_loss: torch.Tensor | None
    logits: torch.Tensor
    pred_masks: list[torch.Tensor] = field(default_factory=list)
    seg_embeddings: list[torch.Tensor] = field(default_factory=list)
    last_hidden_state: torch.Tensor | None = None


@dataclass
class GroundingResult:
    """What `predict` returns for one prompt.

    Attributes:
        text: the answer with chat and special tokens removed (`[SEG]` and `<p>` tags kept).
        phrases: the `<p> ... </p>` spans in order (may be fewer than masks for referring answers).
        masks: one bool tensor (T, H, W) per `[SEG]`, original resolution, every frame of the video.
        scores: (num_seg, T) per-object, per-frame SAM2 object-score logits (mask confidence).
        frame_indices: source frames the encoders saw.
    """

    text: str
    phrases: list[str]
    masks: list[torch.Tensor]
    scores: torch.Tensor
    frame_indices: list[int]
