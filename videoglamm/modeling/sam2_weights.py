"""Trained SAM2 weights from wherever they live, copied strictly into a SAM2 module.

Both systems start from a SAM2 that already segments: the released models from the official SAM2
checkpoints, the tiny synthetic ones from a tiny SAM2 trained on the synthetic shapes. A source is:
  * a VideoGLaMM folder written by `save_pretrained`, or a model shipped in `videoglamm/assets/models`
    (e.g. "videoglamm-tiny-synthetic"): the keys under `mask_decoder.model.` of its `model.safetensors`;
  * a `.safetensors` / `.pt` file or an in-memory state dict holding a bare SAM2 state dict, an official
    SAM2 checkpoint (`{"model": state_dict}`), or a VideoGLaMM state dict (detected by that prefix).
The copy is strict: every SAM2 key must be present with the same shape and no other key may remain.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from videoglamm.errors import CheckpointError

VIDEOGLAMM_SAM2_PREFIX = "mask_decoder.model."

Sam2Source = str | os.PathLike | Mapping[str, Tensor]


def _read_file(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"{path} does not hold a state dict (got {type(loaded).__name__})")
    return dict(loaded)


def _resolve(source: str | os.PathLike) -> Path:
    """A path: as given if it exists, else a model shipped in videoglamm/assets/models."""
    from videoglamm.modeling.persistence import PACKAGED_MODELS

    path = Path(source)
    if path.exists():
        return path
    shipped = PACKAGED_MODELS / str(source)
    if shipped.is_dir():
        return shipped
    raise CheckpointError(f"SAM2 init source {str(source)!r} is neither a file, a folder nor a shipped model "
                          f"(shipped: {sorted(p.name for p in PACKAGED_MODELS.iterdir() if p.is_dir())})")


def sam2_state_dict(source: Sam2Source) -> dict[str, Tensor]:
    """The SAM2 state dict (keys relative to the SAM2 module) held by `source` (see the module docstring).

    Raises:
        CheckpointError: the source does not exist or holds no recognisable state dict.
    """
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = _resolve(source)
        if path.is_dir():
            weights = path / "model.safetensors"
            if not weights.is_file():
                raise CheckpointError(f"{path} has no model.safetensors")
            path = weights
        state = _read_file(path)
    if set(state) == {"model"} and isinstance(state["model"], Mapping):  # official SAM2 checkpoints
        state = dict(state["model"])
    if any(k.startswith(VIDEOGLAMM_SAM2_PREFIX) for k in state):  # a whole VideoGLaMM: keep its SAM2 only
        state = {k[len(VIDEOGLAMM_SAM2_PREFIX):]: v for k, v in state.items() if k.startswith(VIDEOGLAMM_SAM2_PREFIX)}
    return state


def copy_sam2_weights(sam: torch.nn.Module, source: Sam2Source) -> None:
    """Copy the SAM2 weights of `source` into `sam` (a `SAM2Base`), strictly; trainability is untouched.

    Raises:
        CheckpointError: missing or unexpected keys, or shape mismatches (all of them listed), or an
            unreadable source. `sam` is unchanged when this is raised.
    """
    from videoglamm.modeling.persistence import load_state_strict

    load_state_strict(sam, sam2_state_dict(source), "the SAM2 weights",
                      hint="; do sam2.image_size and the Hiera overrides match those the weights were trained with?")
