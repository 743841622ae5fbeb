"""SAMWISE losses: sigmoid focal + Dice on every frame's mask, cross-entropy on the CME decisions."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class SAMWISEOutput:
    """What `SAMWISE.forward` returns.

    Attributes:
        loss: focal_weight * focal + dice_weight * dice + cme_weight * cme (None without targets).
        focal_loss, dice_loss, cme_loss: the terms (None without targets; cme 0 without labelled decisions).
        mask_logits: (B, T, H, W) mask logits at the target (original) size.
        object_score_logits: (B, T) object-presence logits.
        cme_logits: (N, 2) CME decisions taken in the clips; cme_labels: (N,) their pseudo-labels (-1 = ignore).
    """

    loss: Tensor | None
    focal_loss: Tensor | None
    dice_loss: Tensor | None
    cme_loss: Tensor | None
    mask_logits: Tensor
    object_score_logits: Tensor
    cme_logits: Tensor | None = None
    cme_labels: Tensor | None = None


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Focal loss, mean over each video's pixels (all frames), summed over videos / number of videos.

    Args:
        logits, targets: (B, T, H, W); targets in {0, 1}.
    """
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.flatten(1).mean(1).sum() / logits.shape[0]


def dice_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Dice loss with +1 smoothing over each video's frames flattened, summed / number of videos.

    Args:
        logits, targets: (B, T, H, W).
    """
    prob = logits.sigmoid().flatten(1)
    targets = targets.flatten(1)
    loss = 1 - (2 * (prob * targets).sum(1) + 1) / (prob.sum(1) + targets.sum(1) + 1)
    return loss.sum() / logits.shape[0]


def cme_loss(logits: Tensor | None, labels: Tensor | None, class_weights: tuple[float, float]) -> Tensor:
    """Weighted cross-entropy over the labelled CME decisions; 0 when none is labelled (never NaN).

    Args:
        logits: (N, 2) or None; labels: (N,) in {-1, 0, 1} or None.
    """
    if logits is None or labels is None or not bool((labels >= 0).any()):
        ref = logits if logits is not None else torch.zeros(())
        return ref.sum() * 0.0
    weight = torch.tensor(class_weights, device=logits.device, dtype=logits.dtype)
    return F.cross_entropy(logits, labels, weight=weight, ignore_index=-1)
