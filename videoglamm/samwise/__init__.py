"""SAMWISE: frozen SAM2 and a frozen text encoder joined by cross-modal temporal adapters."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SAMWISE": "videoglamm.samwise.model",
    "SAMWISEConfig": "videoglamm.samwise.config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'videoglamm.samwise' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = list(_LAZY)
