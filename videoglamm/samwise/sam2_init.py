"""Initialise a SAMWISE's frozen SAM2 from trained SAM2 weights.

SAMWISE trains only its adapters, prompt MLP(s) and CME; its SAM2 stays frozen, so it must start from a
SAM2 that already segments (the released models use the pretrained SAM 2.0 checkpoint). For the tiny
synthetic setting the pretrained SAM2 is the one inside the shipped `videoglamm-tiny-synthetic`
VideoGLaMM, which was trained from scratch on the same synthetic shapes. Sources are those of
`videoglamm.modeling.sam2_weights`.
"""

from __future__ import annotations

import torch

from videoglamm.modeling.sam2_weights import Sam2Source, copy_sam2_weights, sam2_state_dict

__all__ = ["load_sam2_weights", "sam2_state_dict"]


def load_sam2_weights(model: torch.nn.Module, source: Sam2Source) -> None:
    """Copy SAM2 weights from `source` into `model.sam2.model` (a SAMWISE), strictly, and keep SAM2 frozen.

    Raises:
        CheckpointError: missing or unexpected keys, or shape mismatches (all of them listed), or an
            unreadable source. `model` is unchanged when this is raised.
    """
    copy_sam2_weights(model.sam2.model, source)
    model.sam2.model.requires_grad_(False)  # SAMWISE's recipe: SAM2 never trains
