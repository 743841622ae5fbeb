"""One entry point for the official checkpoints: `convert_official(kind, state_dict, **parts)`, and inverses.

Kinds and what they produce (keys of `VideoGLaMM(config).state_dict()` unless said otherwise):
  "videoglamm"     the HF-format VideoGLaMM release + `clip=` (the HF CLIP ViT-L/14-336 state dict):
                   the whole model.
  "internvideo2"   InternVideo2-stage2_1b-224p-f4.pt -> `VideoTower` keys
                   (`into_model=True`: `video_tower.*`).
  "clip-hf"        HF CLIP -> `ImageTower` keys (`into_model=True`: `image_tower.*`).
  "clip-openclip"  open_clip / OpenAI CLIP -> `ImageTower` keys (`into_model=True`: `image_tower.*`).
  "sam2"           sam2_hiera_*.pt -> `mask_decoder.model.*`.
  "videogptplus"   Phi-3 + `lora=` + `non_lora=` -> `llm.*`, `image_adapter.*`, `video_adapter.*`.
  "samwise"        a released SAMWISE `.pth` (or its `["model"]`) -> `SAMWISE(config).state_dict()` keys,
                   `config` a `SAMWISEConfig` (default the "samwise-base" preset).
All are pure functions of their inputs (tensors are renamed, not copied, except LoRA merges and the
CLIP q/k/v fusion) and strict: see `_strict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from videoglamm.config import VideoGLaMMConfig
from videoglamm.convert._strict import ConversionReport, unwrap_container
from videoglamm.convert.parts import not_covered_except, part_shapes
from videoglamm.errors import CheckpointError

if TYPE_CHECKING:
    from videoglamm.samwise.config import SAMWISEConfig

KINDS: tuple[str, ...] = ("videoglamm", "internvideo2", "clip-hf", "clip-openclip", "sam2", "videogptplus", "samwise")
DEFAULT_PRESET = "videoglamm-phi3-mini"

# kind -> (required parts, optional parts)
_PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "videoglamm": (("clip",), ("release_config", "tokenizer")),
    "internvideo2": ((), ("into_model",)),
    "clip-hf": ((), ("into_model", "prefix")),
    "clip-openclip": ((), ("into_model", "prefix")),
    "sam2": ((), ("gamma_named_weight",)),
    "videogptplus": (("lora", "non_lora"), ("lora_r", "lora_alpha", "lora_targets")),
    "samwise": ((), ()),
}


def _check_parts(kind: str, parts: Mapping[str, Any]) -> None:
    if kind not in _PARTS:
        raise CheckpointError(f"unknown checkpoint kind {kind!r}; kinds are {list(KINDS)}")
    required, optional = _PARTS[kind]
    missing = [p for p in required if parts.get(p) is None]
    unknown = sorted(set(parts) - set(required) - set(optional))
    if missing or unknown:
        raise TypeError(
            f"convert_official({kind!r}): "
            + (f"missing part(s) {missing}; " if missing else "")
            + (f"unknown argument(s) {unknown}; " if unknown else "")
            + f"it takes {list(required)} (required) and {list(optional)} (optional)"
        )


def _prefixed(
    out: Mapping[str, torch.Tensor], report: ConversionReport, part: str
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    report.sources = {f"{part}.{k}": v for k, v in report.sources.items()}
    report.target_prefix = f"{part}.{report.target_prefix}"
    return {f"{part}.{k}": v for k, v in out.items()}, report


def convert_official_with_report(
    kind: str, state_dict: Mapping[str, Any], *, config: VideoGLaMMConfig | SAMWISEConfig | None = None, **parts: Any
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Like `convert_official`; also return the `ConversionReport` (mapped, renamed, dropped, not covered)."""
    _check_parts(kind, parts)
    if kind == "samwise":
        return _convert_samwise(state_dict, config)
    if config is not None and not isinstance(config, VideoGLaMMConfig):
        raise TypeError(f"convert_official({kind!r}) takes a VideoGLaMMConfig, got {type(config).__name__}")
    cfg = config if config is not None else VideoGLaMMConfig.from_preset(DEFAULT_PRESET)
    into_model = bool(parts.pop("into_model", False))

    if kind == "videoglamm":
        return _convert_release(state_dict, cfg, **parts)
    if kind == "internvideo2":
        from videoglamm.convert.internvideo2 import convert_internvideo2_with_report

        out, report = convert_internvideo2_with_report(state_dict, cfg.video_tower)
        part = "video_tower"
    elif kind in ("clip-hf", "clip-openclip"):
        from videoglamm.convert.clip import convert_clip_hf_with_report, convert_clip_openclip_with_report

        convert = convert_clip_hf_with_report if kind == "clip-hf" else convert_clip_openclip_with_report
        out, report = convert(state_dict, cfg.image_tower, **parts)
        part = "image_tower"
    elif kind == "sam2":
        from videoglamm.convert.sam2 import convert_sam2_with_report

        return convert_sam2_with_report(state_dict, cfg, **parts)
    else:
        from videoglamm.convert.videogptplus import convert_videogptplus_with_report

        return convert_videogptplus_with_report(state_dict, config=cfg, **parts)
    if not into_model:
        return out, report
    out, report = _prefixed(out, report, part)
    report.not_covered = not_covered_except(part)
    return out, report


def convert_official(
    kind: str, state_dict: Mapping[str, Any], *, config: VideoGLaMMConfig | SAMWISEConfig | None = None, **parts: Any
) -> dict[str, torch.Tensor]:
    """Convert an official checkpoint of `kind` (see `KINDS` and the module docstring) to our keys.

    Args:
        kind: one of `KINDS`.
        state_dict: the loaded checkpoint (the main file of that kind).
        config: the target model config (default: the "videoglamm-phi3-mini" preset; for "samwise" a
            `SAMWISEConfig`, default the "samwise-base" preset).
        **parts: per kind: "videoglamm": `clip` (required), `release_config` (the release's config.json as a
            dict), `tokenizer`; "videogptplus": `lora`, `non_lora` (required), `lora_r`, `lora_alpha`,
            `lora_targets`; "sam2": `gamma_named_weight`; tower kinds: `into_model`, CLIP kinds: `prefix`.

    Returns:
        Our state dict, loadable with `strict=True` (into the whole model for "videoglamm" and "samwise",
        into the parts it covers otherwise).

    Raises:
        CheckpointError: an unknown kind; missing, unexpected or wrongly shaped keys (all listed); a
            vocabulary or `[SEG]` id that disagrees with `config`.
        TypeError: a required part is missing, an argument is unknown for this kind, or `config` is the
            other model's config.
    """
    return convert_official_with_report(kind, state_dict, config=config, **parts)[0]


def _convert_samwise(
    state_dict: Mapping[str, Any], config: Any
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    from videoglamm.convert.samwise import convert_samwise
    from videoglamm.samwise.config import SAMWISEConfig
    from videoglamm.samwise.model import SAMWISE

    if config is not None and not isinstance(config, SAMWISEConfig):
        raise TypeError(f"convert_official('samwise') takes a SAMWISEConfig, got {type(config).__name__}")
    with torch.device("meta"):  # only the key/shape table is needed
        target = SAMWISE(config if config is not None else SAMWISEConfig.from_preset("samwise-base"))
    return convert_samwise(state_dict, target)


def _convert_release(
    state_dict: Mapping[str, Any], cfg: VideoGLaMMConfig, *, clip: Mapping[str, Any],
    release_config: Mapping[str, Any] | None = None, tokenizer: Any = None,
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    from videoglamm.convert.videoglamm_release import ReleaseConversion, check_vocabulary

    checked = check_vocabulary(cfg, release_config, tokenizer)
    out, report = ReleaseConversion(cfg).convert_whole(unwrap_container(state_dict, wrappers=())[0])
    clip_out, clip_report = convert_image_tower_hf(clip, cfg)
    out.update(clip_out)
    report.sources.update(clip_report.sources)
    report.dropped.update(clip_report.dropped)
    report.parts = {"image_tower": clip_report, **report.parts}
    report.notes = checked
    order = part_shapes(cfg)
    return {k: out[k] for k in order}, report


def convert_image_tower_hf(
    clip: Mapping[str, Any], cfg: VideoGLaMMConfig
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """The HF CLIP file (hub `CLIPModel` or `CLIPVisionModel`, `vision_model.*`) -> `image_tower.*`."""
    from videoglamm.convert.clip import convert_clip_hf_with_report

    out, report = convert_clip_hf_with_report(clip, cfg.image_tower)
    out, report = _prefixed(out, report, "image_tower")
    report.kind = "image_tower (CLIP)"
    return out, report


def to_official(kind: str, state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Our keys -> the official names of `kind` (the same tensor objects); dropped tensors are not recreated.

    Args:
        kind: "videoglamm" (a full `VideoGLaMM` state dict -> release names; `image_tower.*` is left out, the
            release has no CLIP), "internvideo2" (`VideoTower` or `video_tower.*` keys), "sam2"
            (`mask_decoder.model.*` -> `{"model": {...}}`) or "samwise" (a `SAMWISE` state dict -> official
            names and layouts).

    Raises:
        CheckpointError: another kind, or a key that has no official name in that kind.
    """
    if kind == "videoglamm":
        from videoglamm.convert.videoglamm_release import to_official_release

        return to_official_release(state_dict)
    if kind == "internvideo2":
        from videoglamm.convert.internvideo2 import to_official_internvideo2

        return to_official_internvideo2({k.removeprefix("video_tower."): v for k, v in state_dict.items()})
    if kind == "sam2":
        from videoglamm.convert.sam2 import to_official_sam2

        return to_official_sam2(state_dict)
    if kind == "samwise":
        from videoglamm.convert.samwise import to_official_samwise

        return to_official_samwise(state_dict)
    raise CheckpointError(f"to_official supports 'videoglamm', 'internvideo2', 'sam2' and 'samwise', not {kind!r}")
