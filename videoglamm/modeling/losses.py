"""Mask losses. Each is averaged over real (mask, frame) pairs: padding is never counted."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mask_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-pixel BCE with logits, mean over pixels, then mean over the leading (mask, frame) pairs.

    Args:
        logits, targets: (P, H, W) for P (mask, frame) pairs; targets in {0, 1}.
    """
    per_pair = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(1).mean(1)
    return per_pair.mean()


def mask_dice(logits: torch.Tensor, targets: torch.Tensor, scale: float = 1000.0, eps: float = 1e-6) -> torch.Tensor:
    """Soft Dice loss, mean over (mask, frame) pairs. `scale` and `eps` follow the official values, so an
    empty target with an empty prediction costs ~0 rather than 1.

    Args:
        logits, targets: (P, H, W).
    """
    probs = logits.sigmoid().flatten(1)
    targets = targets.flatten(1)
    numerator = 2 * (probs / scale * targets).sum(-1)
    denominator = (probs / scale).sum(-1) + (targets / scale).sum(-1)
    return (1 - (numerator + eps) / (denominator + eps)).mean()
