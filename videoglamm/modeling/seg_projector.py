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


def seg_hidden_states(input_ids: torch.Tensor, hidden: torch.Tensor, seg_token_id: int, source: str,
                      phrase_index: torch.Tensor | None = None) -> torch.Tensor:
    """The hidden state that feeds the projector for each `[SEG]`, in reading order.

    Args:
        input_ids: (B, L) token ids.
        hidden: (B, L, H) last-layer hidden states.
        seg_token_id: id of `[SEG]`.
        source: "before_seg" or "seg" (one position, see `seg_hidden_positions`), or "phrase": the mean over
            the `[SEG]` position and the tokens of the phrase it grounds (`phrase_index`).
        phrase_index: (B, L), only for "phrase": k at the tokens of the phrase of the k-th `[SEG]` of the row
            (1-based), 0 elsewhere; `VideoGLaMMProcessor` returns it as `seg_phrase_index`.

    Returns:
        (num_seg, H).

    Raises:
        InputError: "phrase" without `phrase_index`. ShapeMismatchError: `phrase_index` is not (B, L).
    """
    if source != "phrase":
        pos = seg_hidden_positions(input_ids, seg_token_id, source)
        return hidden[pos[:, 0], pos[:, 1]]
    from videoglamm.errors import InputError, ShapeMismatchError

    if phrase_index is None:
        raise InputError("seg_projector.hidden_source 'phrase' needs seg_phrase_index (B, L); build the batch "
                         "with VideoGLaMMProcessor and answers")
    if phrase_index.shape != input_ids.shape:
        raise ShapeMismatchError(f"seg_phrase_index {tuple(phrase_index.shape)} must match input_ids "
                                 f"{tuple(input_ids.shape)}")
    positions = (input_ids == seg_token_id).nonzero()  # row-major: reading order within each row
    rows = positions[:, 0]
    _, counts = torch.unique_consecutive(rows, return_counts=True)
    first = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    k = torch.arange(len(rows), device=rows.device) - first + 1  # 1-based [SEG] number within its row
    weights = (phrase_index[rows] == k[:, None]).to(hidden.dtype)
    weights[torch.arange(len(rows), device=rows.device), positions[:, 1]] = 1.0
    weights = weights / weights.sum(1, keepdim=True)
    return torch.bmm(weights.unsqueeze(1), hidden[rows]).squeeze(1)
