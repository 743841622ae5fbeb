"""Convert a SAM2 checkpoint (`sam2_hiera_*.pt`) to our `mask_decoder.model.*` keys.

Our mask decoder wraps the `sam2` package's own `SAM2Base`, so names are the checkpoint's names under a
prefix; the table is built from the module that `config.sam2` describes, which makes it exact (a SAM 2.1
file in a 2.0 config, or a Hiera-B+ file in a Hiera-L config, fails with the differing keys listed).
VideoGLaMM's vendored SAM2 names the memory-encoder fuser's layer scale `.weight` instead of `.gamma`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from videoglamm.config import VideoGLaMMConfig
from videoglamm.convert._strict import ConversionReport, check_conversion, map_names, unwrap_container
from videoglamm.convert.parts import not_covered_except, part_shapes
from videoglamm.convert.videoglamm_release import sam2_official_name

TARGET_PREFIX = "mask_decoder.model."


def convert_sam2_with_report(
    state_dict: Mapping[str, Any], config: VideoGLaMMConfig, *, gamma_named_weight: bool = False
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Map a SAM2 checkpoint onto `mask_decoder.model.*`; also return the `ConversionReport`.

    Args:
        state_dict: the loaded `.pt` (`{"model": {...}}` as released, or the flat dict).
        config: the target config; `config.sam2` picks the SAM2 variant (Hiera-L, B+, ...).
        gamma_named_weight: the source is VideoGLaMM's vendored SAM2 (`fuser.layers.N.weight` for `.gamma`).

    Returns:
        (our state dict, report).

    Raises:
        CheckpointError: missing, unexpected or wrongly shaped keys (all listed).
    """
    tensors, container = unwrap_container(state_dict, wrappers=("model",))
    expected = part_shapes(config, ("mask_decoder",))
    inverse = {k: sam2_official_name(k[len(TARGET_PREFIX):], gamma_named_weight) for k in expected}
    out, sources, leftover = map_names(tensors, {v: k for k, v in inverse.items()})
    report = check_conversion(
        "sam2", out, sources, leftover, expected, {}, source_names=inverse.__getitem__, container=container,
        target_prefix=TARGET_PREFIX,
    )
    report.not_covered = not_covered_except("mask_decoder")
    return out, report


def to_official_sam2(
    state_dict: Mapping[str, torch.Tensor], *, gamma_named_weight: bool = False
) -> dict[str, Any]:
    """`mask_decoder.model.*` -> the SAM2 checkpoint layout `{"model": {...}}` (the same tensor objects).

    Raises:
        CheckpointError: a key outside `mask_decoder.model.`.
    """
    from videoglamm.errors import CheckpointError

    foreign = [k for k in state_dict if not k.startswith(TARGET_PREFIX)]
    if foreign:
        raise CheckpointError(f"not SAM2 keys (expected the prefix {TARGET_PREFIX!r}): {foreign[:10]}")
    return {"model": {sam2_official_name(k[len(TARGET_PREFIX):], gamma_named_weight): v
                      for k, v in state_dict.items()}}

