"""Per-frame SAM2 decoding as SAMWISE does it: memory of the previous frames, text tokens as prompts.

Differences from interactive SAM2 tracking (`videoglamm.modeling.sam2_tracking`), which is why SAMWISE
conditions on memory here instead of through `SAM2Base._prepare_memory_conditioned_features`:
  * there are no conditioning (prompted) frames: frame 0 is decoded with `no_mem_embed`, every later
    frame attends to the spatial memories of the previous `num_maskmem - 1` frames and the object
    pointers of the previous `max_obj_ptrs_in_encoder - 1` frames only (frame 0 falls out of the window);
  * every frame is prompted by the text tokens, after SAM2's two padding-point tokens;
  * single-mask output (mask token 0); object-score suppression (-1024) at inference only;
  * the early pointer (mask token 0 after the first two-way block) is captured for the CME;
  * memories are encoded from the soft high-res logits.
The bank itself is the wrapper's `MemoryBank` (SAM2's `output_dict`, trimmed to these windows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from videoglamm.modeling.sam2_tracking import MemoryBank

if TYPE_CHECKING:
    from sam2.modeling.sam2_base import SAM2Base

    from videoglamm.modeling.mask_decoder import FrameFeatures

NO_OBJECT_LOGIT = -1024.0  # SAM2's value for "object absent"


@dataclass
class HeadOutput:
    """Decoding of one frame for B objects.

    Attributes:
        low_res: (B, 1, S/4, S/4) mask logits (suppressed to -1024 where absent, at inference).
        high_res: (B, 1, S, S) the same upsampled (what memory is encoded from).
        object_scores: (B, 1) object-presence logits.
        obj_ptr: (B, D) object pointer (`no_obj_ptr` mixed in where absent).
        early_ptr: (B, D) mask token 0 after the first two-way block.
    """

    low_res: Tensor
    high_res: Tensor
    object_scores: Tensor
    obj_ptr: Tensor
    early_ptr: Tensor


def condition_on_memory(sam: "SAM2Base", frame_idx: int, feats: "FrameFeatures", memory: MemoryBank) -> Tensor:
    """The frame's lowest-level features conditioned on memory (or + `no_mem_embed` without memory).

    Args:
        sam: the `SAM2Base`.
        frame_idx: index of the frame (memory keys are indices of earlier frames).
        feats: `FrameFeatures` of this frame, one row per object (B).
        memory: the bank; entries are read from `non_cond_frame_outputs`.

    Returns:
        (B, D, h, w) features for the mask decoder.
    """
    current, pos = feats.vision_feats[-1], feats.vision_pos_embeds[-1]  # (hw, B, D)
    b, d = current.shape[1], sam.hidden_dim
    h, w = feats.feat_sizes[-1]
    store = memory.output_dict["non_cond_frame_outputs"]
    spatial_window, pointer_window = memory.windows()
    spatial = [(t_rel, store[frame_idx - t_rel]) for t_rel in range(1, spatial_window + 1)
               if frame_idx - t_rel in store and "maskmem_features" in store[frame_idx - t_rel]]
    pointers = [store[frame_idx - t_rel]["obj_ptr"] for t_rel in range(1, pointer_window + 1) if frame_idx - t_rel in store]
    if frame_idx == 0 or not (spatial or pointers):
        return (current + sam.no_mem_embed).permute(1, 2, 0).reshape(b, d, h, w)

    mem, mem_pos = [], []
    for t_rel, out in spatial:
        mem.append(out["maskmem_features"].flatten(2).permute(2, 0, 1))
        enc = out["maskmem_pos_enc"][-1].flatten(2).permute(2, 0, 1)
        mem_pos.append(enc + sam.maskmem_tpos_enc[t_rel - 1])  # index num_maskmem - t_pos - 1 = t_rel - 1
    num_ptr_tokens = 0
    if pointers:
        ptrs = torch.stack(pointers, dim=0)  # (P, B, D)
        mem_dim = sam.mem_dim
        if mem_dim < d:  # a pointer becomes D / mem_dim tokens, as in SAM2
            ptrs = ptrs.reshape(-1, b, d // mem_dim, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
        mem.append(ptrs)
        mem_pos.append(ptrs.new_zeros(ptrs.shape))  # SAMWISE adds no temporal encoding to pointers
        num_ptr_tokens = ptrs.shape[0]
    fused = sam.memory_attention(curr=[current], curr_pos=[pos], memory=torch.cat(mem), memory_pos=torch.cat(mem_pos),
                                 num_obj_ptr_tokens=num_ptr_tokens)
    return fused.permute(1, 2, 0).reshape(b, d, h, w)


def decode_heads(sam: "SAM2Base", pix_feat: Tensor, high_res: list[Tensor] | None, prompt_tokens: Tensor,
                 suppress_absent: bool) -> HeadOutput:
    """SAM2's prompt encoder + mask decoder with text tokens after the padding points.

    Args:
        sam: the `SAM2Base`.
        pix_feat: (B, D, h, w) memory-conditioned (or `no_mem_embed`) features.
        high_res: the two high-res maps (already through `conv_s0/conv_s1`), or None.
        prompt_tokens: (B, n, D) sparse tokens appended after the two padding-point tokens.
        suppress_absent: set mask logits to -1024 where the object score is <= 0 (inference).

    Returns:
        `HeadOutput`.
    """
    b = pix_feat.shape[0]
    device = pix_feat.device
    # No points: SAM2 feeds one dummy point (label -1) and the prompt encoder pads another one.
    coords = torch.zeros(b, 1, 2, device=device)
    labels = -torch.ones(b, 1, dtype=torch.int32, device=device)
    sparse, dense = sam.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
    sparse = torch.cat([sparse.to(prompt_tokens.dtype), prompt_tokens], dim=1)

    decoder = sam.sam_mask_decoder
    first_token = 1 + int(decoder.pred_obj_scores)  # [obj score token], iou token, mask tokens
    captured: list[Tensor] = []
    hook = decoder.transformer.layers[0].register_forward_hook(
        lambda module, args, output: captured.append(output[0][:, first_token]))
    try:
        low_res, _, sam_tokens, object_scores = decoder(
            image_embeddings=pix_feat, image_pe=sam.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense.to(pix_feat.dtype),
            multimask_output=False, repeat_image=False, high_res_features=high_res,
        )
    finally:
        hook.remove()

    present = object_scores > 0  # (B, 1)
    if suppress_absent:
        low_res = torch.where(present[:, :, None, None], low_res, torch.full_like(low_res, NO_OBJECT_LOGIT))
    high = F.interpolate(low_res.float(), size=(sam.image_size, sam.image_size), mode="bilinear",
                         align_corners=False).to(low_res.dtype)
    obj_ptr = sam.obj_ptr_proj(sam_tokens[:, 0])
    if sam.pred_obj_scores:
        lam = present.to(obj_ptr.dtype)
        if sam.fixed_no_obj_ptr:
            obj_ptr = lam * obj_ptr
        obj_ptr = obj_ptr + (1 - lam) * sam.no_obj_ptr
    return HeadOutput(low_res, high, object_scores, obj_ptr, captured[0])


def encode_memory(sam: "SAM2Base", feats: "FrameFeatures", high_res_logits: Tensor, object_scores: Tensor) -> dict:
    """SAM2's memory encoder on the frame's features and soft mask logits; a `MemoryBank` entry."""
    features, pos = sam._encode_new_memory(
        current_vision_feats=feats.vision_feats, feat_sizes=feats.feat_sizes,
        pred_masks_high_res=high_res_logits, object_score_logits=object_scores, is_mask_from_pts=False,
    )
    return {"maskmem_features": features, "maskmem_pos_enc": pos}
