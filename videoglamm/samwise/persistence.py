"""Saving and loading SAMWISE folders: config.json + model.safetensors + tokenizer/.

Loading is strict (every missing or unexpected key is an error that lists them); nothing is unpickled.
A preset name instead of a folder gives the architecture with random weights and a logged warning.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from videoglamm.errors import CheckpointError
from videoglamm.modeling.persistence import atomic_dir
from videoglamm.samwise.config import SAMWISE_PRESETS, SAMWISEConfig

if TYPE_CHECKING:
    from videoglamm.samwise.model import SAMWISE

logger = logging.getLogger(__name__)
WEIGHTS = "model.safetensors"
TOKENIZER_DIR = "tokenizer"  # own folder: AutoTokenizer would otherwise read the model's config.json


def save_pretrained(model: "SAMWISE", path: str | os.PathLike) -> None:
    """Write `model` (config, every tensor, its tokenizer) to `path`, atomically."""
    from safetensors.torch import save_file

    tmp, commit = atomic_dir(Path(path))
    try:
        model.config.save_pretrained(tmp)
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, tmp / WEIGHTS,
                  metadata={"format": "pt"})
        model.tokenizer.save_pretrained(tmp / TOKENIZER_DIR)
        commit()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_state_strict(model: "SAMWISE", state: dict[str, torch.Tensor], where: str) -> None:
    """Load `state` into `model` with assign=True, failing on any missing, unexpected or mis-shaped key.

    Raises:
        CheckpointError: listing the offending keys.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {expected[k]}" for k in sorted(set(state) & set(expected))
              if tuple(state[k].shape) != expected[k]]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{where}: {len(missing)} missing, {len(unexpected)} unexpected, {len(shapes)} mis-shaped "
                              f"keys. missing: {missing[:20]}; unexpected: {unexpected[:20]}; shapes: {shapes[:20]}")
    model.load_state_dict(state, strict=True, assign=True)
    _rebuild_text_buffers(model)
    model.declare_trainable()  # assign=True replaced the parameters


def _rebuild_text_buffers(model: "SAMWISE") -> None:
    """RoBERTa's non-persistent index buffers are not in any checkpoint; rebuild them after a meta build."""
    emb = model.text_encoder.embeddings
    n = model.config.text.max_position_embeddings
    device = emb.word_embeddings.weight.device
    emb.register_buffer("position_ids", torch.arange(n, device=device).expand((1, -1)), persistent=False)
    emb.register_buffer("token_type_ids", torch.zeros((1, n), dtype=torch.long, device=device), persistent=False)


def load_pretrained(cls: type["SAMWISE"], name_or_path: str | os.PathLike, *, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32) -> "SAMWISE":
    """See `SAMWISE.from_pretrained`.

    Raises:
        CheckpointError: not a preset and not a complete SAMWISE folder, or keys do not match.
    """
    from videoglamm.devices import resolve_device
    from videoglamm.errors import ConfigError
    from videoglamm.safe_io import read_safetensors

    device = resolve_device(device)
    name, path = str(name_or_path), Path(name_or_path)
    if not path.is_dir() and name in SAMWISE_PRESETS:
        logger.warning("%s: no weights given; the model is RANDOMLY initialised (architecture only)", name)
        return cls(SAMWISEConfig.from_preset(name)).to(device=device, dtype=dtype)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path} is neither a SAMWISE preset ({sorted(SAMWISE_PRESETS)}) nor a folder with config.json")
    from videoglamm.safe_io import read_json

    raw = read_json(path / "config.json", what="a SAMWISE model config")
    if raw.get("model_type") != SAMWISEConfig.model_type:
        raise CheckpointError(f"{path}/config.json describes a {raw.get('model_type')!r} model, not samwise")
    if not (path / WEIGHTS).is_file():
        raise CheckpointError(f"{path} is missing {WEIGHTS}; was it written completely by save_pretrained?")
    unknown = sorted(set(raw) - set(SAMWISEConfig.section_types) - {"model_type", "transformers_version", "preset"})
    if unknown:
        raise ConfigError(f"{path}/config.json has unknown field(s) {unknown}; known sections: "
                          f"{sorted(SAMWISEConfig.section_types)}")
    config = SAMWISEConfig(**{k: v for k, v in raw.items() if k not in ("model_type", "transformers_version")})
    with torch.device("meta"):
        model = cls(config)
    load_state_strict(model, read_safetensors(path / WEIGHTS, "SAMWISE weights"), str(path / WEIGHTS))
    if (path / TOKENIZER_DIR).is_dir():
        from transformers import AutoTokenizer

        model.processor_tokenizer = AutoTokenizer.from_pretrained(str(path / TOKENIZER_DIR))
    return model.to(device=device, dtype=dtype)


def is_samwise(name_or_path: str | os.PathLike) -> bool:
    """Whether a model name or folder refers to SAMWISE (a preset, or a folder whose config says samwise)."""
    name, path = str(name_or_path), Path(name_or_path)
    if (path / "config.json").is_file():
        from videoglamm.safe_io import read_json

        return read_json(path / "config.json", what="a model config").get("model_type") == SAMWISEConfig.model_type
    return name in SAMWISE_PRESETS
