"""Early fusion: the sam2 Hiera trunk and the transformers RoBERTa run block by block in lock-step.

Before adapter i, Hiera runs up to the end of stage `fusion_stages[i]` and RoBERTa up to layer
`text_layers[i]`; the adapter's residuals are added to both streams, which then continue. The maps at
the end of each Hiera stage (adapted where an adapter follows) go through SAM2's FPN neck, so the rest
of SAM2 sees ordinary backbone features. Both towers are the real modules, driven from outside; nothing
of them is copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from videoglamm.errors import ShapeMismatchError

if TYPE_CHECKING:
    from sam2.modeling.sam2_base import SAM2Base

    from videoglamm.samwise.adapter import CMTAdapter


@dataclass
class FusionOutput:
    """Result of early fusion on B clips of T frames.

    Attributes:
        backbone: SAM2 image-encoder output {"backbone_fpn", "vision_pos_enc", "vision_features"} for the
            B*T frames (batch-major), with the neck's scalp applied.
        text_hidden: (B, L, Dt) final text hidden states (after every layer and adapter).
    """

    backbone: dict[str, list[Tensor] | Tensor]
    text_hidden: Tensor


def text_embeddings(text_encoder: nn.Module, input_ids: Tensor, padding: Tensor) -> Tensor:
    """RoBERTa embeddings with padded positions zeroed, as fairseq's RoBERTa does.

    Args:
        text_encoder: a `transformers.RobertaModel`.
        input_ids: (B, L) token ids.
        padding: (B, L) bool, True on padding.

    Returns:
        (B, L, Dt).
    """
    hidden = text_encoder.embeddings(input_ids=input_ids)
    return hidden * (~padding).unsqueeze(-1).to(hidden.dtype)


def additive_mask(padding: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, L) padding -> (B, 1, 1, L) additive attention mask for RoBERTa layers."""
    mask = torch.zeros(padding.shape, dtype=dtype, device=padding.device)
    return mask.masked_fill(padding, torch.finfo(dtype).min)[:, None, None, :]


def early_fusion(
    sam: "SAM2Base",
    text_encoder: nn.Module,
    adapters: "nn.ModuleList | list[CMTAdapter]",
    fusion_stages: tuple[int, ...],
    text_layers: tuple[int, ...],
    pixel_values: Tensor,
    input_ids: Tensor,
    padding: Tensor,
    num_frames: int,
    use_adapters: bool = True,
) -> FusionOutput:
    """Run Hiera and RoBERTa in lock-step with the CMT adapters between them.

    Args:
        sam: the `SAM2Base` whose `image_encoder` (trunk + neck) is driven.
        text_encoder: `transformers.RobertaModel`.
        adapters: one adapter per fusion point.
        fusion_stages: 1-based Hiera stages each adapter follows.
        text_layers: RoBERTa layers (cumulative) run before each adapter.
        pixel_values: (B*T, 3, S, S) frames of B clips, batch-major.
        input_ids: (B, L) caption tokens.
        padding: (B, L) bool, True on padding.
        num_frames: T.
        use_adapters: False skips the adapters (the towers then run unfused, for ablations).

    Returns:
        `FusionOutput`.

    Raises:
        ShapeMismatchError: pixel batch not B*T, or frames not (3, S, S).
    """
    s = sam.image_size
    b = input_ids.shape[0]
    if pixel_values.ndim != 4 or pixel_values.shape[1:] != (3, s, s) or pixel_values.shape[0] != b * num_frames:
        raise ShapeMismatchError(f"fusion needs (B*T={b * num_frames}, 3, {s}, {s}) frames for {b} captions of "
                                 f"T={num_frames}; got {tuple(pixel_values.shape)}")
    trunk = sam.image_encoder.trunk
    stage_ends = list(trunk.stage_ends)
    layers = text_encoder.encoder.layer
    mask = additive_mask(padding, pixel_values.dtype)

    x = trunk.patch_embed(pixel_values)  # (N, H, W, C) channels-last, as Hiera keeps it
    x = x + trunk._get_pos_embed(x.shape[1:3])
    text = text_embeddings(text_encoder, input_ids, padding)

    fusion_at = {stage_ends[stage - 1]: i for i, stage in enumerate(fusion_stages)}
    stage_maps: list[Tensor] = []
    next_layer = 0
    for block_idx, block in enumerate(trunk.blocks):
        x = block(x)
        if block_idx in fusion_at:
            i = fusion_at[block_idx]
            while next_layer < text_layers[i]:
                text = layers[next_layer](text, mask)
                next_layer += 1
            if use_adapters:
                vis_res, text_res = adapters[i](x.permute(0, 3, 1, 2), text, padding, num_frames)
                x = x + vis_res.permute(0, 2, 3, 1)
                text = text + text_res
        if block_idx in stage_ends:
            stage_maps.append(x.permute(0, 3, 1, 2))
    while next_layer < len(layers):
        text = layers[next_layer](text, mask)
        next_layer += 1

    features, pos = sam.image_encoder.neck(stage_maps)
    scalp = sam.image_encoder.scalp
    if scalp > 0:  # SAM2 drops the lowest-resolution level after the top-down pass
        features, pos = features[:-scalp], pos[:-scalp]
    backbone = {"vision_features": features[-1], "vision_pos_enc": list(pos), "backbone_fpn": list(features)}
    return FusionOutput(backbone=backbone, text_hidden=text)
