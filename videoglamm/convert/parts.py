"""Key -> shape tables of the parts of `VideoGLaMM`, in the full model's namespace, built on the meta device.

A converter that covers only some parts (SAM2 alone, the VideoGPT+ LLM and adapters) checks against just
those parts, so it builds only them; the union over `PARTS` equals `VideoGLaMM(config).state_dict()`
(checked by a test). Tables are cached per part and sub-config, since building the full-size LLM or SAM2
on meta still costs about a second.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable

import torch

from videoglamm.config import VideoGLaMMConfig
from videoglamm.convert._strict import expected_shapes

# Children of `VideoGLaMM`, in registration order (their names are the key prefixes).
PARTS: tuple[str, ...] = (
    "image_tower", "video_tower", "image_adapter", "video_adapter", "llm", "seg_projector", "mask_decoder",
)


def _section_json(config: VideoGLaMMConfig, *sections: str) -> str:
    return json.dumps({s: dataclasses.asdict(getattr(config, s)) for s in sections}, sort_keys=True)


# The config sections each part's shapes depend on.
_SECTIONS: dict[str, tuple[str, ...]] = {
    "image_tower": ("image_tower",),
    "video_tower": ("video_tower",),
    "image_adapter": ("image_tower", "llm", "adapter"),
    "video_adapter": ("video_tower", "llm", "adapter"),
    "llm": ("llm",),
    "seg_projector": ("llm", "seg_projector"),
    "mask_decoder": ("sam2",),
}


_CACHE: dict[tuple[str, str], tuple[tuple[str, tuple[int, ...]], ...]] = {}


def _shapes_cached(part: str, cfg: VideoGLaMMConfig) -> tuple[tuple[str, tuple[int, ...]], ...]:
    key = (part, _section_json(cfg, *_SECTIONS[part]))
    if key not in _CACHE:
        with torch.device("meta"):
            module = _build(part, cfg)
        _CACHE[key] = tuple((f"{part}.{k}", shape) for k, shape in expected_shapes(module).items())
    return _CACHE[key]


def _build(part: str, cfg: VideoGLaMMConfig) -> torch.nn.Module:
    # Same constructors and arguments as `VideoGLaMM.__init__`.
    if part == "image_tower":
        from videoglamm.modeling.image_tower import build_image_tower

        return build_image_tower(cfg.image_tower)
    if part == "video_tower":
        from videoglamm.modeling.video_tower import build_video_tower

        return build_video_tower(cfg.video_tower)
    if part in ("image_adapter", "video_adapter"):
        from videoglamm.modeling.adapters import VisionAdapter

        tower, pool = ((cfg.image_tower, cfg.adapter.image_pool) if part == "image_adapter"
                       else (cfg.video_tower, cfg.adapter.video_pool))
        return VisionAdapter(tower.width, cfg.llm.hidden_size, pool)
    if part == "llm":
        from videoglamm.modeling.llm import build_llm

        return build_llm(cfg.llm)
    if part == "seg_projector":
        from videoglamm.modeling.seg_projector import SegProjector

        return SegProjector(cfg.llm.hidden_size, cfg.seg_projector.out_dim)
    if part == "mask_decoder":
        from videoglamm.modeling.mask_decoder import build_mask_decoder

        return build_mask_decoder(cfg.sam2)
    raise KeyError(f"unknown model part {part!r}; parts are {PARTS}")


def part_shapes(config: VideoGLaMMConfig, parts: Iterable[str] = PARTS) -> dict[str, tuple[int, ...]]:
    """Full-model key -> shape of every tensor of the given parts (e.g. "mask_decoder.model.no_mem_embed").

    Args:
        config: the model config.
        parts: names from `PARTS`.

    Returns:
        The table, in part order then registration order.
    """
    out: dict[str, tuple[int, ...]] = {}
    for part in parts:
        if part not in _SECTIONS:
            raise KeyError(f"unknown model part {part!r}; parts are {PARTS}")
        out.update(_shapes_cached(part, config))
    return out


# Where each part of the model comes from when a conversion does not cover it.
PART_SOURCES: dict[str, str] = {
    "image_tower": "CLIP ViT-L/14-336: kind 'clip-hf' or 'clip-openclip'",
    "video_tower": "InternVideo2-stage2_1b-224p-f4.pt: kind 'internvideo2'",
    "image_adapter": "VideoGPT+ non_lora_trainables.bin: kind 'videogptplus' (or fresh initialisation)",
    "video_adapter": "VideoGPT+ non_lora_trainables.bin: kind 'videogptplus' (or fresh initialisation)",
    "llm": "Phi-3 + the VideoGPT+ LoRA: kind 'videogptplus'",
    "seg_projector": "fresh initialisation (the official recipe trains it from scratch)",
    "mask_decoder": "sam2_hiera_large.pt: kind 'sam2'",
}


def not_covered_except(*covered: str) -> dict[str, str]:
    """`ConversionReport.not_covered` for a conversion that produces only the `covered` parts."""
    return {f"{part}.": source for part, source in PART_SOURCES.items() if part not in covered}
