"""videoglamm: pixel-level grounding in videos (VideoGLaMM and SAMWISE).

Importing the package is cheap: heavy parts (torch models, sam2, transformers) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "VideoGLaMMConfig": "videoglamm.config",
    "VideoGLaMM": "videoglamm.modeling.videoglamm",
    "VideoGLaMMOutput": "videoglamm.modeling.outputs",
    "GroundingResult": "videoglamm.modeling.outputs",
    "VideoGLaMMProcessor": "videoglamm.processing.processor",
    "SAMWISE": "videoglamm.samwise.model",
    "SAMWISEConfig": "videoglamm.samwise.config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'videoglamm' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["__version__", *_LAZY]
