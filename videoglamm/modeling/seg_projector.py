"""L->V projector: turns the hidden state tied to each `[SEG]` into one SAM2 prompt token."""

from __future__ import annotations

import torch
from torch import nn


class SegProjector(nn.Module):
    """hidden -> hidden -> out_dim with a ReLU in between (the official `text_hidden_fcs`)."""

    def __init__(self, hidden_size: int, out_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, hidden_size)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden_size, out_dim)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., hidden_size) -> (..., out_dim)."""
        return self.fc2(self.act(self.fc1(hidden)))


def seg_hidden_positions(input_ids: torch.Tensor, seg_token_id: int, source: str) -> torch.Tensor:
    """Positions whose hidden state feeds the projector, one per `[SEG]`, in reading order.

    Args:
        input_ids: (B, L) token ids.
        seg_token_id: id of `[SEG]`.
        source: "before_seg" (the token preceding `[SEG]`, the official convention that the released
            weights need) or "seg" (the `[SEG]` position itself).

    Returns:
        (num_seg, 2) long tensor of (batch index, position).
    """
    positions = (input_ids == seg_token_id).nonzero()
    if source == "before_seg":
        positions = positions.clone()
        positions[:, 1] -= 1
        if (positions[:, 1] < 0).any():
            raise ValueError("a [SEG] token at position 0 has no preceding token to take the hidden state from")
    return positions
