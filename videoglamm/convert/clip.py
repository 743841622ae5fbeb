"""Convert CLIP vision weights (transformers or open_clip naming) to `ImageTower` keys.

Our keys are `model.<open_clip visual key>` without `proj` (see `videoglamm.modeling.image_tower`).
transformers stores q, k and v separately; they are stacked (q, k, v rows) into `in_proj_weight/bias`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from videoglamm.config import ImageTowerConfig
from videoglamm.convert._strict import (
    ConversionReport,
    check_conversion,
    expected_shapes,
    rename_by_templates,
    unwrap_container,
)
from videoglamm.errors import CheckpointError

# transformers CLIPVisionModel (after the prefix) -> ours. q/k/v are fused separately.
_HF_TEMPLATES: dict[str, str] = {
    "embeddings.class_embedding": "model.class_embedding",
    "embeddings.patch_embedding.weight": "model.conv1.weight",
    "embeddings.position_embedding.weight": "model.positional_embedding",
    "pre_layrnorm.weight": "model.ln_pre.weight",
    "pre_layrnorm.bias": "model.ln_pre.bias",
    "encoder.layers.{}.layer_norm1.weight": "model.transformer.resblocks.{}.ln_1.weight",
    "encoder.layers.{}.layer_norm1.bias": "model.transformer.resblocks.{}.ln_1.bias",
    "encoder.layers.{}.self_attn.out_proj.weight": "model.transformer.resblocks.{}.attn.out_proj.weight",
    "encoder.layers.{}.self_attn.out_proj.bias": "model.transformer.resblocks.{}.attn.out_proj.bias",
    "encoder.layers.{}.layer_norm2.weight": "model.transformer.resblocks.{}.ln_2.weight",
    "encoder.layers.{}.layer_norm2.bias": "model.transformer.resblocks.{}.ln_2.bias",
    "encoder.layers.{}.mlp.fc1.weight": "model.transformer.resblocks.{}.mlp.c_fc.weight",
    "encoder.layers.{}.mlp.fc1.bias": "model.transformer.resblocks.{}.mlp.c_fc.bias",
    "encoder.layers.{}.mlp.fc2.weight": "model.transformer.resblocks.{}.mlp.c_proj.weight",
    "encoder.layers.{}.mlp.fc2.bias": "model.transformer.resblocks.{}.mlp.c_proj.bias",
    "post_layernorm.weight": "model.ln_post.weight",
    "post_layernorm.bias": "model.ln_post.bias",
}
_HF_QKV = re.compile(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)")

_OPENCLIP_TEMPLATES: dict[str, str] = {
    name: f"model.{name}"
    for name in (
        "class_embedding", "positional_embedding", "conv1.weight", "ln_pre.weight", "ln_pre.bias",
        "ln_post.weight", "ln_post.bias",
        *(f"transformer.resblocks.{{}}.{leaf}" for leaf in (
            "ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
            "attn.out_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
            "mlp.c_proj.weight", "mlp.c_proj.bias",
        )),
    )
}

_UNUSED_PROJECTION = "joint image-text projection; the tower feeds intermediate patch features"


def _hf_drop_rules(prefix: str) -> dict[str, str]:
    """The rest of a transformers CLIPModel file (hub layout), dropped by name."""
    return {
        re.escape(prefix) + r"embeddings\.position_ids": "position-id buffer of old transformers versions",
        r"visual_projection\.weight": _UNUSED_PROJECTION,
        r"text_projection\.weight": "CLIP text tower (not used)",
        r"logit_scale": "CLIP contrastive temperature (not used)",
        r"text_model\..+": "CLIP text tower (not used)",
    }


def _openclip_drop_rules(prefix: str) -> dict[str, str]:
    """The rest of an open_clip CLIP (or OpenAI archive) state dict, dropped by name."""
    rules = {re.escape(prefix) + r"proj": _UNUSED_PROJECTION}
    if not prefix:
        return rules  # a bare image tower: anything else would be ambiguous with our own keys
    return rules | {
        r"(positional_embedding|text_projection|token_embedding\.weight|ln_final\.(weight|bias))": (
            "CLIP text tower (not used)"
        ),
        r"transformer\.resblocks\.\d+\..+": "CLIP text tower (not used)",
        r"logit_scale": "CLIP contrastive temperature (not used)",
        r"(input_resolution|context_length|vocab_size)": "OpenAI archive metadata, not a tensor",
    }


def _expected(cfg: ImageTowerConfig) -> dict[str, tuple[int, ...]]:
    from videoglamm.modeling.image_tower import ImageTower

    with torch.device("meta"):
        return expected_shapes(ImageTower(cfg))


def convert_clip_hf_with_report(
    hf_state_dict: Mapping[str, Any], config: ImageTowerConfig | None = None, *, prefix: str = "vision_model."
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Like `convert_clip_hf`, and also return the `ConversionReport`."""
    cfg = config if config is not None else ImageTowerConfig()
    tensors, container = unwrap_container(hf_state_dict, wrappers=())
    out, sources, leftover = rename_by_templates(tensors, _HF_TEMPLATES, prefix=prefix)

    # Stack q, k, v (rows in that order) per layer into open_clip's fused in_proj.
    parts: dict[tuple[str, str], dict[str, str]] = {}
    rest: list[str] = []
    for key in leftover:
        m = _HF_QKV.fullmatch(key[len(prefix):]) if key.startswith(prefix) else None
        if m is None:
            rest.append(key)
        else:
            parts.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = key
    for (layer, kind), names in parts.items():
        if set(names) != {"q", "k", "v"}:
            rest.extend(names.values())  # reported as unexpected next to the missing fused key
            continue
        pieces = [tensors[names[p]] for p in "qkv"]
        if not all(isinstance(t, torch.Tensor) for t in pieces):
            raise CheckpointError(f"clip-hf: q/k/v of layer {layer} are not all tensors: {sorted(names.values())}")
        shapes = {names[p]: tuple(t.shape) for p, t in zip("qkv", pieces)}
        if len(set(shapes.values())) != 1:
            raise CheckpointError(f"clip-hf: q/k/v of layer {layer} differ in shape: {shapes}")
        target = f"model.transformer.resblocks.{layer}.attn.in_proj_{kind}"
        out[target] = torch.cat(pieces, dim=0)
        sources[target] = tuple(names[p] for p in "qkv")

    report = check_conversion(
        "clip-hf", out, sources, rest, _expected(cfg), _hf_drop_rules(prefix),
        container=container, source_prefix=prefix, target_prefix="model.",
    )
    return out, report


def convert_clip_hf(
    hf_state_dict: Mapping[str, Any], config: ImageTowerConfig | None = None, *, prefix: str = "vision_model."
) -> dict[str, torch.Tensor]:
    """Map transformers CLIP vision weights onto `ImageTower` keys.

    Args:
        hf_state_dict: a `CLIPVisionModel` / `CLIPModel` state dict. The hub file (on-disk, transformers
            4.x names) uses `vision_model.*`; transformers 5's in-memory `CLIPVisionModel` has no prefix.
        config: the target tower config (default: ViT-L/14-336).
        prefix: the literal prefix of the vision keys ("vision_model.", "" or e.g.
            "model.image_vision_tower.vision_tower.vision_model.").

    Returns:
        Our state dict, loadable with `strict=True` (q/k/v fused, the rest renamed).

    Raises:
        CheckpointError: a key is missing, unexpected or wrongly shaped (all listed), or q/k/v disagree.
    """
    return convert_clip_hf_with_report(hf_state_dict, config, prefix=prefix)[0]


def convert_clip_openclip_with_report(
    state_dict: Mapping[str, Any], config: ImageTowerConfig | None = None, *, prefix: str = "visual."
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Like `convert_clip_openclip`, and also return the `ConversionReport`."""
    cfg = config if config is not None else ImageTowerConfig()
    tensors, container = unwrap_container(state_dict, wrappers=("state_dict",))
    out, sources, leftover = rename_by_templates(tensors, _OPENCLIP_TEMPLATES, prefix=prefix)
    report = check_conversion(
        "clip-openclip", out, sources, leftover, _expected(cfg), _openclip_drop_rules(prefix),
        container=container, source_prefix=prefix, target_prefix="model.",
    )
    return out, report


def convert_clip_openclip(
    state_dict: Mapping[str, Any], config: ImageTowerConfig | None = None, *, prefix: str = "visual."
) -> dict[str, torch.Tensor]:
    """Map open_clip CLIP weights (`visual.*`) onto `ImageTower` keys (`model.*`).

    Args:
        state_dict: an open_clip CLIP state dict (or the OpenAI archive), flat or under `state_dict`.
        config: the target tower config (default: ViT-L/14-336).
        prefix: the literal prefix of the image-tower keys ("visual." for a full CLIP, "" for a bare tower).

    Returns:
        Our state dict, loadable with `strict=True`.

    Raises:
        CheckpointError: a key is missing, unexpected or wrongly shaped (all listed).
    """
    return convert_clip_openclip_with_report(state_dict, config, prefix=prefix)[0]
