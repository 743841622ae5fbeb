"""Convert the official InternVideo2 stage-2 checkpoint (`InternVideo2-stage2_1b-224p-f4.pt`) to `VideoTower`.

The file holds the vision encoder (`vision_encoder.*`), the video-text heads and a BERT text encoder.
VideoGLaMM runs only the first 39 of the 40 blocks; everything else is dropped through the named
allow-list below, and any other difference fails loudly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from videoglamm.config import VideoTowerConfig
from videoglamm.convert._strict import (
    ConversionReport,
    check_conversion,
    expected_shapes,
    rename_by_templates,
    unwrap_container,
)
from videoglamm.errors import CheckpointError

OFFICIAL_PREFIX = "vision_encoder."

# official (after `vision_encoder.`) -> ours; `{}` is the block index.
_TEMPLATES: dict[str, str] = {
    "cls_token": "cls_token",
    "pos_embed": "pos_embed",
    "patch_embed.proj.weight": "patch_embed.weight",
    "patch_embed.proj.bias": "patch_embed.bias",
    "blocks.{}.norm1.weight": "blocks.{}.norm1.weight",
    "blocks.{}.attn.qkv.weight": "blocks.{}.attn.qkv.weight",
    "blocks.{}.attn.q_norm.weight": "blocks.{}.attn.q_norm.weight",
    "blocks.{}.attn.k_norm.weight": "blocks.{}.attn.k_norm.weight",
    "blocks.{}.attn.proj.weight": "blocks.{}.attn.proj.weight",
    "blocks.{}.attn.proj.bias": "blocks.{}.attn.proj.bias",
    "blocks.{}.ls1.gamma": "blocks.{}.attn_layer_scale",
    "blocks.{}.norm2.weight": "blocks.{}.norm2.weight",
    "blocks.{}.mlp.fc1.weight": "blocks.{}.mlp.fc1.weight",
    "blocks.{}.mlp.fc1.bias": "blocks.{}.mlp.fc1.bias",
    "blocks.{}.mlp.fc2.weight": "blocks.{}.mlp.fc2.weight",
    "blocks.{}.mlp.fc2.bias": "blocks.{}.mlp.fc2.bias",
    "blocks.{}.ls2.gamma": "blocks.{}.mlp_layer_scale",
}
_INVERSE: dict[str, str] = {ours: official for official, ours in _TEMPLATES.items()}


def _drop_rules(cfg: VideoTowerConfig) -> dict[str, str]:
    """Named allow-list (regex over the full source key -> reason) for tensors the video tower never uses."""
    p = r"vision_encoder\."
    rules: dict[str, str] = {}
    unused_blocks = range(cfg.feature_block, cfg.depth)
    if len(unused_blocks) > 0:
        alternatives = "|".join(str(i) for i in unused_blocks)
        rules[rf"{p}blocks\.({alternatives})\..+"] = (
            f"never run: VideoGLaMM takes the output of block {cfg.feature_block} of {cfg.depth}"
        )
    rules.update({
        rf"{p}img_pos_embed": "single-image position embedding; VideoGLaMM sends images to CLIP",
        rf"{p}(clip_pos_embed|clip_img_pos_embed)": "position embeddings of the distillation heads",
        rf"{p}clip_projector\..+": "attention-pool distillation head",
        rf"{p}clip_decoder\.\d+\..+": "stage-1 distillation decoders",
        rf"{p}final_clip_decoder\..+": "stage-1 final distillation decoder",
        r"vision_proj\.(weight|bias)": "video-text contrastive projection",
        r"text_encoder\..+": "BERT-large text encoder with its MLM head (stage-2 text side)",
        r"text_proj\.(weight|bias)": "text-side contrastive projection",
        r"temp": "contrastive temperature",
        r"itm_head\.(weight|bias)": "video-text matching head",
    })
    return rules


def _expected(cfg: VideoTowerConfig) -> dict[str, tuple[int, ...]]:
    from videoglamm.modeling.video_tower import VideoTower

    with torch.device("meta"):
        return expected_shapes(VideoTower(cfg))


def _official_name(key: str) -> str:
    parts = key.split(".")
    if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit():
        template = _INVERSE.get(".".join(["blocks", "{}", *parts[2:]]))
        if template is not None:
            return OFFICIAL_PREFIX + template.format(parts[1])
    elif key in _INVERSE:
        return OFFICIAL_PREFIX + _INVERSE[key]
    raise CheckpointError(f"cannot name {key!r} in the InternVideo2 layout: it is not a VideoTower key")


def convert_internvideo2_with_report(
    state_dict: Mapping[str, Any], config: VideoTowerConfig | None = None
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Like `convert_internvideo2`, and also return the `ConversionReport` (mapped / dropped / renamed)."""
    cfg = config if config is not None else VideoTowerConfig()
    tensors, container = unwrap_container(state_dict)
    out, sources, leftover = rename_by_templates(tensors, _TEMPLATES, prefix=OFFICIAL_PREFIX)
    # Blocks past `feature_block` are not part of our module; hand them to the allow-list check.
    for key in [k for k in out if k.startswith("blocks.") and int(k.split(".")[1]) >= cfg.feature_block]:
        leftover.append(sources.pop(key)[0])
        del out[key]
    report = check_conversion(
        "internvideo2", out, sources, leftover, _expected(cfg), _drop_rules(cfg),
        source_names=_official_name, container=container, source_prefix=OFFICIAL_PREFIX,
    )
    return out, report


def convert_internvideo2(
    state_dict: Mapping[str, Any], config: VideoTowerConfig | None = None
) -> dict[str, torch.Tensor]:
    """Map the official InternVideo2 stage-2 `.pt` content onto `VideoTower` keys.

    Args:
        state_dict: the loaded `.pt`: flat, or under `model` / `module`. Keys `vision_encoder.*` etc.
        config: the target tower config (default: the official 1B, 4 frames, feature block 39).

    Returns:
        Our state dict (same tensors, renamed), loadable with `strict=True`.

    Raises:
        CheckpointError: a key is missing, unexpected (not mapped and not on the named drop list), or
            has the wrong shape; the message lists them all.
    """
    return convert_internvideo2_with_report(state_dict, config)[0]


def to_official_internvideo2(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of `convert_internvideo2` on our keys: `VideoTower` keys -> official `vision_encoder.*` names.

    Args:
        state_dict: a `VideoTower` state dict.

    Returns:
        The same tensors under the official names (dropped tensors are not recreated).

    Raises:
        CheckpointError: a key is not a `VideoTower` key.
    """
    return {_official_name(key): value for key, value in state_dict.items()}
