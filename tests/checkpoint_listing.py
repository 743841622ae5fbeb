"""Reading the checkpoint-key listings in tests/data/checkpoint_keys/ (name<TAB>shape<TAB>dtype per line)."""

import json
from pathlib import Path

import torch

KEYS = Path(__file__).resolve().parent / "data" / "checkpoint_keys"


def listing(*names: str) -> dict[str, torch.Tensor]:
    """Meta tensors with exactly the names, shapes and dtypes of the given listings (float32 when unknown)."""
    out: dict[str, torch.Tensor] = {}
    for name in names:
        for line in (KEYS / name).read_text().splitlines():
            key, shape, dtype = line.split("\t")
            out[key] = torch.empty(json.loads(shape), dtype=getattr(torch, dtype or "float32"), device="meta")
    return out
