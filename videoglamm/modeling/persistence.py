"""Saving and loading VideoGLaMM folders.

Layout of a folder written by `save_pretrained`:

    config.json              VideoGLaMMConfig
    model.safetensors        every tensor outside the LLM (towers, adapters, SEG projector, SAM2)
    llm/                     the Phi-3 LLM in Hugging Face format (so bitsandbytes can quantize it on load)
    tokenizer files
    README.md                the model card (`videoglamm.model_card`): licence, provenance, eval numbers

`load_pretrained` also takes a hub id (`videoglamm.hub`) and the official release (folder or hub id,
converted once and cached: `videoglamm.convert.on_load`).
`save_pretrained(..., trainable_only=True)` writes `adapter.safetensors` (the trainable tensors, LoRA
included) and `adapter_config.json` instead, to be loaded on top of a base with `adapter=`.
Loading is strict: any missing or unexpected key is an error that lists them. Nothing is unpickled.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from videoglamm.config import PRESETS, LoRAConfig, VideoGLaMMConfig
from videoglamm.errors import CheckpointError

if TYPE_CHECKING:
    from videoglamm.modeling.videoglamm import VideoGLaMM

logger = logging.getLogger(__name__)
WEIGHTS = "model.safetensors"
ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
LLM_DIR = "llm"
PACKAGED_MODELS = Path(__file__).resolve().parent.parent / "assets" / "models"
# Names that resolve to a preset architecture plus weights shipped inside the package.
SHIPPED = {"videoglamm-tiny-synthetic": "videoglamm-tiny"}


def atomic_dir(final: Path) -> tuple[Path, "callable"]:
    """A temporary sibling folder and a `commit()` that renames it onto `final` (replacing it)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))

    def commit() -> None:
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)

    return tmp, commit


def _non_llm_state(model: "VideoGLaMM") -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("llm.")}


def card_for_save(model: Any, eval_results: list[Any] | None, license: str | None) -> Any:
    """The model's `CardInfo` (or an "unknown origin" one) with `eval_results` added and `license` set."""
    import dataclasses

    from videoglamm.model_card import CardInfo

    info = getattr(model, "card", None) or CardInfo(
        origin="unknown", summary="The origin of these weights was not recorded (set `model.card`, a "
                                  "`videoglamm.model_card.CardInfo`, before saving to record it).")
    changes: dict[str, Any] = {"eval_results": [*info.eval_results, *(eval_results or [])]}
    if license is not None:
        changes |= {"license": license, "license_name": None, "license_link": None}
    return dataclasses.replace(info, **changes)


def save_pretrained(model: "VideoGLaMM", path: str | os.PathLike, trainable_only: bool = False, *,
                    eval_results: list[Any] | None = None, license: str | None = None) -> None:
    """Write `model` (and its processor's tokenizer, when it has one) to `path`, atomically.

    A full save also writes README.md, the model card (`videoglamm.model_card`): `eval_results`
    (`EvalEntry` list) are added to the numbers the model already carries, `license` replaces its licence.
    """
    from safetensors.torch import save_file

    from videoglamm.model_card import videoglamm_card

    final = Path(path)
    tmp, commit = atomic_dir(final)
    try:
        info = card_for_save(model, eval_results, license)
        model.config.save_pretrained(tmp)
        if trainable_only:
            tensors = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}
            save_file(tensors, tmp / ADAPTER_WEIGHTS, metadata={"format": "pt"})
            meta = {"lora": model.config.lora.__dict__ | {"target_modules": list(model.config.lora.target_modules)}
                    if model.has_lora else None}
            (tmp / ADAPTER_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
        else:
            if model.has_lora:
                raise CheckpointError("merge LoRA (model.merge_lora()) before saving a full model, or save "
                                      "trainable_only=True to keep the adapter separate")
            save_file({k: v.contiguous() for k, v in _non_llm_state(model).items()}, tmp / WEIGHTS,
                      metadata={"format": "pt"})
            model.language_model.save_pretrained(tmp / LLM_DIR, safe_serialization=True)
        if model.processor is not None:
            model.processor.save_pretrained(tmp)
        if not trainable_only:
            # Named after the destination, not the temporary folder.
            videoglamm_card(tmp, model.config, sum(v.numel() for v in model.state_dict().values()), info,
                            title=final.name)
        commit()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    model.card = info


def _strict_report(missing: list[str], unexpected: list[str], where: Path, hint: str = "") -> None:
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: {len(missing)} missing and {len(unexpected)} unexpected keys. "
            f"missing: {missing[:20]}{' ...' if len(missing) > 20 else ''}; "
            f"unexpected: {unexpected[:20]}{' ...' if len(unexpected) > 20 else ''}{hint}"
        )


def _load_llm(path: Path, config: VideoGLaMMConfig, dtype: torch.dtype, quantization: str | None) -> Any:
    from transformers import Phi3ForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype, "output_loading_info": True}
    if quantization is not None:
        from transformers import BitsAndBytesConfig

        if quantization == "4bit":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
        elif quantization == "8bit":
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        else:
            raise CheckpointError(f"quantization must be '4bit' or '8bit', got {quantization!r}")
        kwargs["device_map"] = "cpu" if not torch.cuda.is_available() else {"": 0}
    llm, info = Phi3ForCausalLM.from_pretrained(path, **kwargs)
    _strict_report(sorted(info["missing_keys"]), sorted(info["unexpected_keys"]), path)
    if info.get("mismatched_keys"):
        raise CheckpointError(f"{path}: tensors with wrong shapes: {info['mismatched_keys'][:20]}")
    llm.generation_config.do_sample = False
    return llm


def load_pretrained(
    cls: type["VideoGLaMM"],
    name_or_path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    quantization: str | None = None,
    adapter: str | os.PathLike | None = None,
    clip: str | os.PathLike | None = None,
    tokenizer: str | os.PathLike | None = None,
    config: VideoGLaMMConfig | str | None = None,
    conversion_cache: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    revision: str | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> "VideoGLaMM":
    """See `VideoGLaMM.from_pretrained`."""
    from videoglamm.hub import HubOptions, resolve
    from videoglamm.model_card import random_init
    from videoglamm.processing.processor import VideoGLaMMProcessor

    hub = HubOptions(cache_dir=cache_dir, revision=revision, local_files_only=local_files_only, token=token)
    name = str(name_or_path)
    path = Path(name_or_path)
    if name in SHIPPED:
        path = PACKAGED_MODELS / name
        if not (path / "config.json").is_file():
            raise CheckpointError(f"the shipped weights of {name} are missing from this install ({path})")
    if not path.exists() and name in PRESETS:
        logger.warning("%s: no weights given; the model is RANDOMLY initialised (architecture only)", name)
        model = cls(VideoGLaMMConfig.from_preset(name)).to(device=device, dtype=dtype)
        model.processor = VideoGLaMMProcessor.from_preset(name)
        model.card = random_init(name)
    else:
        from_hub = not path.exists()
        path = resolve(path if path.exists() else name, hub, presets=[*PRESETS, *SHIPPED])
        release_parts = {"clip": clip, "tokenizer": tokenizer, "config": config}
        if not _is_our_folder(path):
            path = _converted_release(path, release_parts, conversion_cache, hub,
                                      {"repo": name, "revision": path.name} if from_hub else None)
        elif any(v is not None for v in release_parts.values()):
            given = sorted(k for k, v in release_parts.items() if v is not None)
            raise TypeError(f"{given} only apply when converting an official release; {path} is already a "
                            "videoglamm folder (its config.json says so)")
        model = _load_folder(cls, path, dtype, device, quantization)
    if adapter is not None:
        load_adapter(model, resolve(adapter, hub))
    return model


def _is_our_folder(path: Path) -> bool:
    if not (path / "config.json").is_file():
        return False
    return json.loads((path / "config.json").read_text()).get("model_type") == VideoGLaMMConfig.model_type


def _converted_release(path: Path, parts: dict[str, Any], cache: str | os.PathLike | None, hub: Any,
                       hub_source: dict[str, str] | None) -> Path:
    """The official release at `path`, converted (once; see `convert.on_load`), or an error saying what it is."""
    from videoglamm.convert.on_load import conversion_cache, converted_videoglamm_release, is_official_videoglamm_release
    from videoglamm.hub import resolve

    if not is_official_videoglamm_release(path):
        if (path / "config.json").is_file():
            raw = json.loads((path / "config.json").read_text())
            raise CheckpointError(f"{path}/config.json describes a {raw.get('model_type')!r} model, and the folder "
                                  "is not the official VideoGLaMM release (no model.visual_model.* / "
                                  "model.text_hidden_fcs.* tensors in its shard index)")
        raise CheckpointError(f"{path} is neither a preset ({sorted([*PRESETS, *SHIPPED])}), a videoglamm folder "
                              "(config.json), nor the official VideoGLaMM release (a shard index holding "
                              "model.visual_model.* and model.text_hidden_fcs.*)")
    if parts["clip"] is None:
        raise CheckpointError(
            f"{path} is the official VideoGLaMM release, which has no CLIP tower: pass "
            "clip='openai/clip-vit-large-patch14-336' (a hub id) or the path of those weights")
    clip = _resolve_clip(parts["clip"], hub)
    tokenizer = resolve(parts["tokenizer"], hub) if parts["tokenizer"] is not None else None
    config = parts["config"]
    if config is None or isinstance(config, str):
        config = VideoGLaMMConfig.from_preset(config or "videoglamm-phi3-mini")
    return converted_videoglamm_release(path, clip=clip, tokenizer=tokenizer, config=config,
                                        cache=conversion_cache(cache), hub=hub_source)


def _resolve_clip(clip: str | os.PathLike, hub: Any) -> Path:
    """CLIP weights from a path or a hub id; from the hub only the weights (safetensors, else .bin) come."""
    from videoglamm.convert.checkpoint_io import list_shards
    from videoglamm.hub import resolve

    if Path(clip).exists():
        return Path(clip)
    path = resolve(clip, hub, allow_patterns=["*.safetensors", "*.safetensors.index.json", "config.json"])
    try:
        list_shards(path)
    except CheckpointError:  # a repo with only pytorch_model.bin: fetch that instead
        path = resolve(clip, hub, allow_patterns=["pytorch_model*.bin", "pytorch_model.bin.index.json"])
    return path


def _load_folder(cls: type["VideoGLaMM"], path: Path, dtype: torch.dtype, device: str | torch.device,
                 quantization: str | None) -> "VideoGLaMM":
    """Load a folder written by `save_pretrained`, strictly."""
    from safetensors.torch import load_file

    from videoglamm.model_card import read_card, unknown_origin
    from videoglamm.processing.processor import VideoGLaMMProcessor

    for needed in (WEIGHTS, f"{LLM_DIR}/config.json"):
        if not (path / needed).is_file():
            raise CheckpointError(f"{path} is missing {needed}; was it written completely by save_pretrained?")
    config = VideoGLaMMConfig.from_pretrained(path)
    with torch.device("meta"):
        model = cls(config)
    # Fresh, aligned copies: safetensors' buffers can be unaligned, which changes CPU kernel paths and
    # so the last bits of some outputs (save -> load must give identical outputs).
    state = {k: v.clone() for k, v in load_file(path / WEIGHTS).items()}
    expected = set(_non_llm_state(model))
    _strict_report(sorted(expected - set(state)), sorted(set(state) - expected), path / WEIGHTS)
    for child_name, child in model.named_children():
        if child_name != "llm":
            prefix = child_name + "."
            child.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                                  strict=True, assign=True)
    model.llm = _load_llm(path / LLM_DIR, config, dtype, quantization)
    _restore_trainable(model)
    for child_name, child in model.named_children():
        if child_name != "llm" or quantization is None:
            child.to(device=device, dtype=dtype)
    model.processor = VideoGLaMMProcessor.from_pretrained(path)
    model.card = read_card(path) or unknown_origin(path)
    return model


def _restore_trainable(model: "VideoGLaMM") -> "VideoGLaMM":
    # load_state_dict(assign=True) replaces parameters, so the declared trainable set is applied again.
    model._declare_trainable()
    model.mask_decoder.declare_trainable()
    return model


def load_adapter(model: "VideoGLaMM", path: str | os.PathLike) -> None:
    """Load trainable-only weights (LoRA included) onto `model`, strictly.

    Raises:
        CheckpointError: files missing, or the adapter's keys differ from the model's trainable set.
    """
    from safetensors.torch import load_file

    path = Path(path)
    for needed in (ADAPTER_WEIGHTS, ADAPTER_CONFIG):
        if not (path / needed).is_file():
            raise CheckpointError(f"{path} is missing {needed}; save it with save_pretrained(trainable_only=True)")
    meta = json.loads((path / ADAPTER_CONFIG).read_text())
    if meta.get("lora") and not model.has_lora:
        model.apply_lora(LoRAConfig(**meta["lora"]))
    copy_trainable(model, load_file(path / ADAPTER_WEIGHTS), path / ADAPTER_WEIGHTS)


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str, hint: str = "") -> None:
    """Load `state` into `module` only if its keys and shapes are exactly the module's.

    Args:
        what: names the weights in the message (e.g. "model.llm_weights runs/llm.pt").
        hint: appended to the message (the likely cause).

    Raises:
        CheckpointError: listing every missing and unexpected key and every shape mismatch; `module` is
            unchanged when this is raised.
    """
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    shapes = sorted(f"{k}: model {tuple(expected[k].shape)} vs source {tuple(state[k].shape)}"
                    for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        raise CheckpointError(f"{what} does not fit the model ({len(missing)} missing, {len(unexpected)} "
                              f"unexpected, {len(shapes)} shape mismatches): missing {missing}, unexpected "
                              f"{unexpected}, shape mismatches {shapes}{hint}")
    module.load_state_dict(state, strict=True)


def copy_trainable(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike,
                   hint: str = "") -> None:
    """Copy `state` into the trainable parameters of `model`; its names must be exactly that set.

    Raises:
        CheckpointError: naming `source`, for missing/unexpected names or a shape mismatch.
    """
    params = dict(model.named_parameters())
    expected = {n for n, p in params.items() if p.requires_grad}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    _strict_report(missing, unexpected, Path(source), hint)
    with torch.no_grad():
        for name, tensor in state.items():
            if params[name].shape != tensor.shape:
                raise CheckpointError(f"{source}: {name} has shape {tuple(tensor.shape)}, the model expects "
                                      f"{tuple(params[name].shape)}{hint}")
            params[name].copy_(tensor)
