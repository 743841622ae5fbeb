"""Reading the files a user hands us (JSON, safetensors) so that every failure is one typed error that
names the file. Nothing is ever unpickled here."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from videoglamm.errors import CheckpointError, VideoGLaMMError


def read_json(path: str | os.PathLike, error: type[VideoGLaMMError] = CheckpointError, kind: type | None = dict,
              what: str = "") -> Any:
    """Parse a JSON file.

    Args:
        error: the class raised (CheckpointError for model files, DatasetError for annotations, InputError
            for score inputs).
        kind: the type the top-level value must have (None: any).
        what: what the file should be, for the message (e.g. "a model config").

    Raises:
        `error`: the file is missing, unreadable, not valid JSON, or not a `kind`.
    """
    path = Path(path)
    label = f" ({what})" if what else ""
    if not path.is_file():
        raise error(f"{path}{label} does not exist")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{path}{label} is not valid JSON ({err}); is it complete? Re-create or re-download it") from None
    except OSError as err:
        raise error(f"cannot read {path}{label}: {err}") from None
    if kind is not None and not isinstance(value, kind):
        raise error(f"{path}{label} must hold a JSON {'object' if kind is dict else kind.__name__}, "
                    f"got {type(value).__name__}")
    return value


def _sniff(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:1] == b"\x80" or head[:4] == b"PK\x03\x04":
        return ("it is a pickle / torch.save file, which is never unpickled here; convert it to safetensors "
                "(videoglamm.convert) or pass a .safetensors file")
    if not head:
        return "it is empty"
    return "it is truncated or not a safetensors file; re-save or re-download it"


def read_safetensors(path: str | os.PathLike, what: str = "") -> dict[str, Any]:
    """Every tensor of a safetensors file (fresh CPU tensors).

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, or a pickle.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    label = f" ({what})" if what else ""
    if not path.is_file():
        raise CheckpointError(f"{path}{label} does not exist")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"cannot read {path}{label}: {err}; {_sniff(path)}") from None
