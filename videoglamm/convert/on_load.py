"""Official checkpoints converted when `from_pretrained` is given them, with the result cached on disk.

`is_official_videoglamm_release(path)` recognises the official VideoGLaMM HF export by its shard index
(or single weights file): it holds `model.visual_model.*` (SAM2) and `model.text_hidden_fcs.*` (the `[SEG]`
projector), which no other checkpoint has. The conversion is the strict one of `videoglamm convert`; its
output folder is cached under `conversion_cache()` keyed by a fingerprint of every input (each file's
resolved path, size and modification time; hub blobs are named by their content hash), the target
config and `CONVERTER_VERSION`, so a second load reads the cached safetensors directly. Cache entries
appear only complete (converted in a hidden staging folder, then renamed). The official SAMWISE `.pth` is
handled the same way (`converted_samwise_file`).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from videoglamm.convert.checkpoint_io import INDEX_FILES, SINGLE_FILES, list_shards
from videoglamm.errors import CheckpointError

# Bump when a converter's output changes for the same input: older cache entries are then not reused.
CONVERTER_VERSION = 1
RELEASE_SIGNATURE = ("model.visual_model.", "model.text_hidden_fcs.0.")


def conversion_cache(explicit: str | os.PathLike | None = None) -> Path:
    """Where converted checkpoints are kept: `explicit`, else $VIDEOGLAMM_CACHE, else
    $XDG_CACHE_HOME (default ~/.cache)/videoglamm/converted."""
    if explicit is not None:
        return Path(explicit)
    if os.environ.get("VIDEOGLAMM_CACHE"):
        return Path(os.environ["VIDEOGLAMM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "videoglamm" / "converted"


def _shard_keys(path: Path) -> set[str]:
    """The tensor names of a checkpoint folder, from its index JSON, or the header of its one file."""
    for name in INDEX_FILES:
        if (path / name).is_file():
            weight_map = json.loads((path / name).read_text()).get("weight_map")
            return set(weight_map) if isinstance(weight_map, dict) else set()
    for name in SINGLE_FILES:
        if (path / name).is_file():
            if name.endswith(".safetensors"):
                from safetensors import safe_open

                with safe_open(path / name, "pt") as f:
                    return set(f.keys())
            from videoglamm.convert.checkpoint_io import load_file

            return set(load_file(path / name))
    return set()


def is_official_videoglamm_release(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder holding the official VideoGLaMM HF export (by its tensor names)."""
    path = Path(path)
    if not path.is_dir():
        return False
    keys = _shard_keys(path)
    return all(any(k.startswith(prefix) for k in keys) for prefix in RELEASE_SIGNATURE)


def _fingerprint(files: list[Path], **extra: Any) -> str:
    rows = []
    for f in sorted(files, key=lambda p: str(p)):
        st = f.stat()
        rows.append([f.name, str(f.resolve()), st.st_size, st.st_mtime_ns])
    blob = json.dumps({"files": rows, "version": CONVERTER_VERSION, **extra}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _cached(entry: Path, write: Callable[[Path], None]) -> Path:
    """The cache entry `entry`, made by `write(folder)` in a staging folder when missing, then renamed into
    place (a concurrent identical conversion may win the rename); a failed write leaves nothing behind."""
    if (entry / "config.json").is_file():
        return entry
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        target = staging / entry.name
        write(target)
        try:
            os.replace(target, entry)
        except OSError:
            if not (entry / "config.json").is_file():
                raise
        return entry
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def converted_videoglamm_release(
    src: Path, *, clip: Path, tokenizer: Path | None, config: Any, cache: Path,
    hub: dict[str, str] | None = None, progress: bool = True,
) -> Path:
    """The cached `from_pretrained` folder of the release at `src` (+ CLIP at `clip`), converting it once.

    The converted config gets the official inference defaults (`InferenceConfig()`).

    Args:
        src: the release folder (or hub snapshot).
        clip: the HF CLIP ViT-L/14-336 weights (file or folder).
        tokenizer: the release's tokenizer folder when it is not inside `src`.
        config: the target `VideoGLaMMConfig`.
        cache: the conversion cache root.
        hub: {"repo", "revision"} when `src` is a hub snapshot (recorded in the model card).

    Raises:
        CheckpointError: what `convert_release_folder` raises (strict keys, vocabulary, missing files).
    """
    from videoglamm.config import InferenceConfig
    from videoglamm.convert.release_folder import convert_release_folder

    cfg = copy.deepcopy(config)
    cfg.inference = InferenceConfig()  # what convert_release_folder writes: part of the cache key
    release_files = [p for p in sorted(src.iterdir()) if p.is_file()]
    clip_files = [s.path for s in list_shards(clip)]
    tok_files = [p for p in sorted(tokenizer.iterdir()) if p.is_file()] if tokenizer is not None else []
    key = _fingerprint(release_files + clip_files + tok_files, config=cfg.to_json_string())
    return _cached(cache / f"videoglamm-release-{key}", lambda target: convert_release_folder(
        src, target, clip=clip, tokenizer=tokenizer, config=cfg, progress=progress, hub=hub))


def load_samwise_checkpoint(path: Path) -> dict[str, Any]:
    """Read an official SAMWISE `.pth` without running pickled code.

    `main.py` saves `{"model", "optimizer", "lr_scheduler", "epoch", "args"}`, `args` being an
    `argparse.Namespace`, a plain attribute holder: it is the one class allowed besides tensors/containers.

    Raises:
        CheckpointError: missing or unreadable file.
    """
    import pickle
    import zipfile

    if not path.is_file():
        raise CheckpointError(f"SAMWISE checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        raise CheckpointError(f"{path}: cannot be read as a SAMWISE checkpoint with torch.load(weights_only=True): "
                              f"{err}") from err


def convert_samwise_file(src: Path, config: Any, dtype: torch.dtype | None = None) -> tuple[Any, Any]:
    """An official SAMWISE `.pth` -> (a `SAMWISE` holding its weights, the `ConversionReport`), strictly.

    Raises:
        CheckpointError: unreadable file; missing, unexpected or mis-shaped keys (all listed).
    """
    from videoglamm.convert.samwise import convert_samwise
    from videoglamm.samwise.model import SAMWISE
    from videoglamm.samwise.persistence import load_state_strict

    checkpoint = load_samwise_checkpoint(src)
    with torch.device("meta"):
        model = SAMWISE(config)
    try:
        state, report = convert_samwise(checkpoint, model)
    except CheckpointError as err:
        raise CheckpointError(f"{src}: {err}") from None
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    load_state_strict(model, state, str(src))
    return model, report


def converted_samwise_file(src: Path, *, config: Any, cache: Path, hub: dict[str, str] | None = None) -> Path:
    """The cached `from_pretrained` folder of the official SAMWISE checkpoint `src`, converting it once.

    Raises:
        CheckpointError: see `convert_samwise_file`.
    """
    from videoglamm.convert import provenance

    key = _fingerprint([src], config=config.to_json_string())

    def write(target: Path) -> None:
        model, _ = convert_samwise_file(src, config)
        model.card = provenance.samwise_release(provenance.sources([src], hub=hub))
        model.save_pretrained(target)

    return _cached(cache / f"samwise-release-{key}", write)
