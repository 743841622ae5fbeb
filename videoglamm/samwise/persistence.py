"""Saving and loading SAMWISE folders: config.json + model.safetensors + tokenizer/ + README.md (model card).

Loading is strict (every missing or unexpected key is an error that lists them); nothing is unpickled.
A hub id is fetched through `videoglamm.hub`; an official `.pth` is converted once and cached
(`videoglamm.convert.on_load`). A preset name gives the architecture with random weights and a warning.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from videoglamm.errors import CheckpointError
from videoglamm.modeling.persistence import atomic_dir
from videoglamm.samwise.config import SAMWISE_PRESETS, SAMWISEConfig

if TYPE_CHECKING:
    from videoglamm.samwise.model import SAMWISE

logger = logging.getLogger(__name__)
WEIGHTS = "model.safetensors"
TOKENIZER_DIR = "tokenizer"  # own folder: AutoTokenizer would otherwise read the model's config.json


def save_pretrained(model: "SAMWISE", path: str | os.PathLike, *, eval_results: list[Any] | None = None,
                    license: str | None = None) -> None:
    """Write `model` (config, every tensor, its tokenizer, a README.md model card) to `path`, atomically.

    `eval_results` (`EvalEntry` list) are added to the numbers the model carries; `license` replaces its licence.
    """
    from safetensors.torch import save_file

    from videoglamm.model_card import samwise_card
    from videoglamm.modeling.persistence import card_for_save

    final = Path(path)
    tmp, commit = atomic_dir(final)
    try:
        info = card_for_save(model, eval_results, license)
        model.config.save_pretrained(tmp)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, tmp / WEIGHTS, metadata={"format": "pt"})
        model.tokenizer.save_pretrained(tmp / TOKENIZER_DIR)
        samwise_card(tmp, model.config, sum(v.numel() for v in state.values()), info, title=final.name)
        commit()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    model.card = info


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
                    dtype: torch.dtype = torch.float32, config: SAMWISEConfig | str | None = None,
                    conversion_cache: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                    revision: str | None = None, local_files_only: bool = False,
                    token: str | bool | None = None) -> "SAMWISE":
    """See `SAMWISE.from_pretrained`.

    Raises:
        CheckpointError: not a preset, a SAMWISE folder, an official checkpoint or a reachable hub id; or
            keys do not match.
        TypeError: `config` given for a folder that needs no conversion.
    """
    from videoglamm.hub import HubOptions, resolve
    from videoglamm.model_card import random_init

    name, path = str(name_or_path), Path(name_or_path)
    if not path.exists() and name in SAMWISE_PRESETS:
        logger.warning("%s: no weights given; the model is RANDOMLY initialised (architecture only)", name)
        model = cls(SAMWISEConfig.from_preset(name)).to(device=device, dtype=dtype)
        model.card = random_init(name)
        return model
    from_hub = not path.exists()
    path = resolve(path if path.exists() else name, HubOptions(cache_dir, revision, local_files_only, token),
                   presets=list(SAMWISE_PRESETS))
    official = _official_file(path)
    if official is not None:
        from videoglamm.convert.on_load import conversion_cache as cache_root, converted_samwise_file

        target = SAMWISEConfig.from_preset(config or "samwise-base") if not isinstance(config, SAMWISEConfig) else config
        hub = {"repo": name, "revision": path.name} if from_hub else None
        path = converted_samwise_file(official, config=target, cache=cache_root(conversion_cache), hub=hub)
    elif config is not None:
        raise TypeError(f"config= only applies when converting an official SAMWISE checkpoint; {path} is already "
                        "a SAMWISE folder")
    return _load_folder(cls, path, device, dtype)


def _official_file(path: Path) -> Path | None:
    """The official checkpoint `path` names: the file itself, or the one `.pth` of a folder without config.json.

    Raises:
        CheckpointError: a folder with neither config.json nor exactly one `.pth`.
    """
    if path.is_file():
        return path
    if (path / "config.json").is_file():
        return None
    candidates = sorted(path.glob("*.pth"))
    if len(candidates) == 1:
        return candidates[0]
    raise CheckpointError(
        f"{path} is neither a SAMWISE preset ({sorted(SAMWISE_PRESETS)}), a SAMWISE folder (config.json), nor an "
        f"official checkpoint (one .pth)" + (f": it holds {[c.name for c in candidates]}, pass the file's path"
                                            if candidates else ""))


def _load_folder(cls: type["SAMWISE"], path: Path, device: str | torch.device, dtype: torch.dtype) -> "SAMWISE":
    """Load a folder written by `save_pretrained`, strictly."""
    from safetensors.torch import load_file

    from videoglamm.model_card import read_card, unknown_origin

    raw = json.loads((path / "config.json").read_text())
    if raw.get("model_type") != SAMWISEConfig.model_type:
        raise CheckpointError(f"{path}/config.json describes a {raw.get('model_type')!r} model, not samwise")
    if not (path / WEIGHTS).is_file():
        raise CheckpointError(f"{path} is missing {WEIGHTS}; was it written completely by save_pretrained?")
    config = SAMWISEConfig(**{k: v for k, v in raw.items() if k not in ("model_type", "transformers_version")})
    with torch.device("meta"):
        model = cls(config)
    load_state_strict(model, load_file(path / WEIGHTS), str(path / WEIGHTS))
    if (path / TOKENIZER_DIR).is_dir():
        from transformers import AutoTokenizer

        model.processor_tokenizer = AutoTokenizer.from_pretrained(str(path / TOKENIZER_DIR))
    model.card = read_card(path) or unknown_origin(path)
    return model.to(device=device, dtype=dtype)


def is_samwise(name_or_path: str | os.PathLike) -> bool:
    """Whether a model name, file or folder refers to SAMWISE (a preset, an official `.pth`, or a folder whose
    config says samwise). Hub ids are not looked up: they count as VideoGLaMM."""
    name, path = str(name_or_path), Path(name_or_path)
    if path.is_file():
        return path.suffix in (".pth", ".pt")
    if (path / "config.json").is_file():
        return json.loads((path / "config.json").read_text()).get("model_type") == SAMWISEConfig.model_type
    return name in SAMWISE_PRESETS
