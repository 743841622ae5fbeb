"""Reading checkpoint files without unpickling code: single files and sharded Hugging Face folders.

`.bin` / `.pt` / `.pth` go through `torch.load(weights_only=True)` (memory-mapped when the file is in the
zip format, so a shard's tensors are paged in from disk as they are written out, not copied into RAM);
`.safetensors` through safetensors. A sharded folder is read shard by shard through its index JSON.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from videoglamm.errors import CheckpointError

INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


@dataclass
class Shard:
    """One file of a checkpoint, with the keys its index says it holds (None without an index)."""

    path: Path
    keys: frozenset[str] | None = None


def list_shards(path: str | Path) -> list[Shard]:
    """The files of a checkpoint: a file, a folder with an index JSON, or a folder with one weights file.

    Raises:
        CheckpointError: the path does not exist, holds no weights, or its index names missing files.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix not in SUFFIXES:
            raise CheckpointError(
                f"{path}: unknown weights file type {path.suffix!r}; expected one of {SUFFIXES}")
        return [Shard(path)]
    if not path.is_dir():
        raise CheckpointError(f"{path} does not exist")
    for name in INDEX_FILES:
        index = path / name
        if index.is_file():
            from videoglamm.safe_io import read_json

            weight_map = read_json(index, what="a shard index").get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise CheckpointError(f"{index} has no 'weight_map'; is it a Hugging Face shard index?")
            files: dict[str, set[str]] = {}
            for key, file in weight_map.items():
                files.setdefault(file, set()).add(key)
            absent = [f for f in files if not (path / f).is_file()]
            if absent:
                raise CheckpointError(
                    f"{index} names shard(s) missing from {path}: {sorted(absent)}; download them all")
            return [Shard(path / f, frozenset(keys)) for f, keys in sorted(files.items())]
    for name in SINGLE_FILES:
        if (path / name).is_file():
            return [Shard(path / name)]
    raise CheckpointError(f"{path} holds no weights: expected one of {INDEX_FILES + SINGLE_FILES}")


def load_file(path: str | Path) -> dict[str, Any]:
    """Load one weights file (no code is unpickled).

    Raises:
        CheckpointError: the file is unreadable, or a pickle that needs more than tensors and plain
            containers.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from videoglamm.safe_io import read_safetensors

        return read_safetensors(path)
    mmap = zipfile.is_zipfile(path)  # torch can only memory-map the zip format, not legacy pickles
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        raise CheckpointError(
            f"{path}: cannot be read with torch.load(weights_only=True): {err}. Only tensors and plain "
            "containers are accepted; re-save the checkpoint as a state dict"
        ) from err


def load_shard(shard: Shard) -> dict[str, Any]:
    """Load a shard and check it holds exactly the keys its index lists.

    Raises:
        CheckpointError: the shard and its index disagree (keys listed / found are named).
    """
    tensors = load_file(shard.path)
    if shard.keys is not None and set(tensors) != shard.keys:
        missing, extra = sorted(shard.keys - set(tensors)), sorted(set(tensors) - shard.keys)
        raise CheckpointError(
            f"{shard.path} does not hold what its index says: missing {missing[:10]}, "
            f"not indexed {extra[:10]}"
        )
    return tensors


def load_all(path: str | Path) -> dict[str, Any]:
    """Every tensor of a (small) checkpoint, all shards together; use for CLIP, not for the release."""
    out: dict[str, Any] = {}
    for shard in list_shards(path):
        out.update(load_shard(shard))
    return out
