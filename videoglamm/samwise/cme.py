"""The Conditional Memory Encoder (CME): detect when memory-free decoding points at another object.

For an eligible frame, a memoryless decoding (same features + `no_mem_embed`, same text prompt) is run
next to the memory-conditioned one. A learned decision token, the memory branch's object pointer and the
memoryless branch's early pointer (mask token 0 after the first two-way block) go through one post-norm
self-attention block; a 2-way head on the decision token says "switch" (class 1) or not. Pseudo-labels
come from the two masks (no ground truth). A switch only changes the mask encoded into memory.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SelfAttentionBlock(nn.Module):
    """Post-norm transformer block: LayerNorm after the attention residual and after the FFN residual.

    The official block (`layers.py:107-121`) owns `norm1..norm3` but applies `norm1` after attention and
    `norm3` after the FFN; `norm2` is never used. The converter maps `norm1` -> `attention_norm`,
    `norm3` -> `ffn_norm` and drops `norm2` by name, so the released weights compute the official output.
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.attention_norm = nn.LayerNorm(dim)
        self.ffn_in = nn.Linear(dim, ffn_dim)
        self.ffn_out = nn.Linear(ffn_dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, D) -> (B, N, D)."""
        attn, _ = self.attention(x, x, x, need_weights=False)
        x = self.attention_norm(x + self.dropout(attn))
        return self.ffn_norm(x + self.dropout(self.ffn_out(self.dropout(torch.relu(self.ffn_in(x))))))


class ConditionalMemoryEncoder(nn.Module):
    """Decision network of the CME.

    Args:
        dim: SAM2 hidden width D.
        num_heads, ffn_dim, dropout: of the self-attention block.
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.decision_token = nn.Embedding(1, dim)
        self.block = SelfAttentionBlock(dim, num_heads, ffn_dim, dropout)
        self.classifier = nn.Linear(dim, 2)

    def forward(self, memory_pointer: Tensor, memoryless_pointer: Tensor) -> Tensor:
        """Args:
            memory_pointer: (B, D) object pointer of the memory branch (detached here).
            memoryless_pointer: (B, D) early pointer of the memoryless branch (detached here).

        Returns:
            (B, 2) logits; class 1 = switch.
        """
        b = memory_pointer.shape[0]
        token = self.decision_token.weight.expand(b, -1)
        seq = torch.stack([token, memory_pointer.detach(), memoryless_pointer.detach()], dim=1)
        return self.classifier(self.block(seq)[:, 0])


def switch_pseudo_labels(memory_logits: Tensor, memoryless_logits: Tensor, memoryless_scores: Tensor,
                         min_area: int, overlap_threshold: float) -> Tensor:
    """CME targets from the two branches' masks (logits > 0), without ground truth.

    Args:
        memory_logits, memoryless_logits: (B, H, W) mask logits of the two branches, cropped to the
            resized frame (the official labels never count the padding).
        memoryless_scores: (B,) object-score logits of the memoryless branch.
        min_area: a frame where both masks have at most this many pixels is ignored.
        overlap_threshold: label 1 (switch) when intersection / min(area) is below it.

    Returns:
        (B,) int64 labels in {-1 (ignore), 0, 1}.
    """
    mem, nomem = memory_logits > 0, memoryless_logits > 0
    area_mem, area_nomem = mem.flatten(1).sum(1), nomem.flatten(1).sum(1)
    inter = (mem & nomem).flatten(1).sum(1)
    smaller = torch.minimum(area_mem, area_nomem)
    # An empty smaller mask gives no overlap evidence: the official 0/0 = NaN also falls through to 0.
    ratio = torch.where(smaller > 0, inter.float() / smaller.clamp(min=1).float(), torch.ones_like(inter, dtype=torch.float))
    labels = (ratio < overlap_threshold).long()
    ignore = (memoryless_scores < 0) | ((area_mem <= min_area) & (area_nomem <= min_area))
    return labels.masked_fill(ignore, -1)


def apply_switch(memory_high_res: Tensor, memoryless_high_res: Tensor, switch: Tensor, scale: float) -> Tensor:
    """The "reweight" switch: where the memoryless logits are foreground, use `scale` x them.

    Args:
        memory_high_res, memoryless_high_res: (B, 1, S, S) mask logits.
        switch: (B,) bool, which objects switch.
        scale: multiplier of the memoryless logits.

    Returns:
        (B, 1, S, S) logits to encode into memory.
    """
    replaced = torch.where(memoryless_high_res > 0, scale * memoryless_high_res, memory_high_res)
    return torch.where(switch[:, None, None, None], replaced, memory_high_res)
