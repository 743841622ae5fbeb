"""Checking a requested device before any tensor is moved to it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from videoglamm.errors import InputError

if TYPE_CHECKING:
    import torch


def resolve_device(device: "str | torch.device | None") -> "torch.device":
    """`device` as a `torch.device`, refused early when it is malformed or not present on this machine.

    Raises:
        InputError: an unknown device string, or a CUDA/MPS device this machine does not have.
    """
    import torch

    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as err:
        raise InputError(f"unknown device {device!r} ({err}); use 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} asked for, but this machine has no usable CUDA GPU; "
                             "use --device cpu (device='cpu')")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r}: MPS is not available here; use --device cpu (device='cpu')")
    return dev
