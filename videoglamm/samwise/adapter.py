"""The Cross-Modal Temporal (CMT) adapter: HSA over clip subvolumes, then VTA and TVA cross-attention.

One adapter sits at each fusion point between the Hiera trunk and RoBERTa. It sees the B*T frames of B
clips and the B captions, and returns residuals for both streams:

    x = ReLU(BN(conv1x1(v)))                 visual down to A channels        (B*T, A, H, W)
    x_att = x + HSA(x)                       within each P x P x T subvolume (or the whole clip)
    x_att = x_att * VTA(x_att, text)         every frame attends to its caption (pads masked)
    t_att = t * TVA(t, mean_T(x))            the caption attends to the clip-averaged frame
    return ReLU(BN(conv1x1(x_att))), Linear(t_att)

Frames are batch-major: row b*T + t is frame t of clip b (the official code mixed clips up when B > 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from videoglamm.errors import ShapeMismatchError


def sine_temporal_embedding(num_frames: int, dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Fixed 1D sine embedding of positions (1..T)/T * 2pi, sin/cos interleaved: (T, dim)."""
    pos = torch.arange(1, num_frames + 1, device=device, dtype=torch.float32) / num_frames * 2 * math.pi
    i = torch.arange(dim, device=device, dtype=torch.float32)
    freqs = 10000 ** (2 * torch.div(i, 2, rounding_mode="floor") / dim)
    angles = pos[:, None] / freqs
    emb = torch.stack([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=2).flatten(1)
    return emb.to(dtype)


class HierarchicalSelfAttention(nn.Module):
    """HSA: self-attention among the T*P^2 tokens of one P x P patch location across a clip's frames.

    Args:
        dim: token width A.
        num_heads: attention heads.
        patch_size: P.
        dropout: attention dropout.
        scope: "local" (subvolumes, official) or "global" (one sequence of all T*H*W clip positions).
    """

    def __init__(self, dim: int, num_heads: int, patch_size: int, dropout: float, scope: str = "local") -> None:
        super().__init__()
        self.patch_size = patch_size
        self.scope = scope
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.proj = nn.Linear(dim, dim)
        self.spatial_embed = nn.Parameter(torch.zeros(patch_size * patch_size, dim))
        nn.init.trunc_normal_(self.spatial_embed, std=0.02)

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        """Args:
            x: (B*T, A, H, W) down-projected frames, batch-major.
            num_frames: T.

        Returns:
            (B*T, A, H, W) HSA output (without the residual).

        Raises:
            ShapeMismatchError: H or W is not a multiple of P, or B*T not a multiple of T.
        """
        bt, a, h, w = x.shape
        p, t = self.patch_size, num_frames
        if bt % t or h % p or w % p:
            raise ShapeMismatchError(f"HSA needs (B*T, A, H, W) with T={t} dividing {bt} and P={p} dividing "
                                     f"H={h}, W={w}; got {tuple(x.shape)}")
        b, nh, nw = bt // t, h // p, w // p
        # (B, T, A, nh, P, nw, P) -> (B, nh, nw, T, P, P, A): one row per subvolume, tokens in (t, i, j) order.
        cells = x.reshape(b, t, a, nh, p, nw, p).permute(0, 3, 5, 1, 4, 6, 2)
        temporal = sine_temporal_embedding(t, a, x.device, x.dtype)
        pos = temporal[:, None, None, :] + self.spatial_embed.reshape(p, p, a)[None]  # (T, P, P, A)
        tokens = cells + pos
        if self.scope == "local":
            seq = tokens.reshape(b * nh * nw, t * p * p, a)
        else:  # every position of the clip: (B, T * H * W) in (nh, nw, t, i, j) order
            seq = tokens.reshape(b, nh * nw * t * p * p, a)
        seq = self.norm(seq)
        out, _ = self.attention(seq, seq, seq, need_weights=False)
        out = self.proj(out)
        out = out.reshape(b, nh, nw, t, p, p, a).permute(0, 3, 6, 1, 4, 2, 5)
        return out.reshape(bt, a, h, w)


class MultiplicativeCrossAttention(nn.Module):
    """`query * MHA(query, context)`: the adapters' gated cross-attention (no positional encodings)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, num_heads, dropout=0.0, batch_first=True)

    def forward(self, query: Tensor, context: Tensor, context_padding: Tensor | None = None) -> Tensor:
        """Args:
            query: (N, Lq, A).
            context: (N, Lk, A).
            context_padding: (N, Lk) bool, True on padded context tokens (ignored as keys).

        Returns:
            (N, Lq, A).
        """
        out, _ = self.attention(query, context, context, key_padding_mask=context_padding, need_weights=False)
        return query * out


class CMTAdapter(nn.Module):
    """One Cross-Modal Temporal adapter (see the module docstring).

    Args:
        visual_dim: Cv, channels of the Hiera stage it follows.
        text_dim: width of the text encoder.
        dim: adapter width A.
        num_heads: heads of every attention.
        patch_size: HSA patch size P.
        use_hsa: include HSA (the pretraining configuration does not).
        hsa_dropout: HSA attention dropout.
        hsa_scope: "local" or "global" (see `HierarchicalSelfAttention`).
    """

    def __init__(self, visual_dim: int, text_dim: int, dim: int, num_heads: int, patch_size: int,
                 use_hsa: bool = True, hsa_dropout: float = 0.1, hsa_scope: str = "local") -> None:
        super().__init__()
        self.vision_down = nn.Sequential(nn.Conv2d(visual_dim, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU())
        # A 1x1 conv; the official ConvTranspose2d(dim -> Cv) is the same map with dims 0/1 swapped.
        self.vision_up = nn.Sequential(nn.Conv2d(dim, visual_dim, 1, bias=False), nn.BatchNorm2d(visual_dim), nn.ReLU())
        self.text_down = nn.Linear(text_dim, dim, bias=False)
        self.text_up = nn.Linear(dim, text_dim, bias=False)
        self.hsa = HierarchicalSelfAttention(dim, num_heads, patch_size, hsa_dropout, hsa_scope) if use_hsa else None
        self.vision_to_text = MultiplicativeCrossAttention(dim, num_heads)
        self.text_to_vision = MultiplicativeCrossAttention(dim, num_heads)

    def forward(self, visual: Tensor, text: Tensor, text_padding: Tensor, num_frames: int) -> tuple[Tensor, Tensor]:
        """Args:
            visual: (B*T, Cv, H, W) frames of B clips, batch-major.
            text: (B, L, Dt) caption hidden states.
            text_padding: (B, L) bool, True on padding tokens.
            num_frames: T.

        Returns:
            (visual residual (B*T, Cv, H, W), text residual (B, L, Dt)).

        Raises:
            ShapeMismatchError: the frame batch is not B*T for the B captions.
        """
        bt, _, h, w = visual.shape
        b = text.shape[0]
        if bt != b * num_frames or text_padding.shape != text.shape[:2]:
            raise ShapeMismatchError(
                f"adapter got {bt} frames, {tuple(text.shape)} text and {tuple(text_padding.shape)} padding for "
                f"T={num_frames}: frames must be (B*T, ...) for B={b} captions, padding (B, L)"
            )
        x = self.vision_down(visual)  # (B*T, A, H, W)
        x_att = x + self.hsa(x, num_frames) if self.hsa is not None else x
        t = self.text_down(text)  # (B, L, A)

        tokens = x_att.flatten(2).transpose(1, 2)  # (B*T, H*W, A)
        per_frame_text = t.repeat_interleave(num_frames, dim=0)
        per_frame_padding = text_padding.repeat_interleave(num_frames, dim=0)
        tokens = self.vision_to_text(tokens, per_frame_text, per_frame_padding)
        x_att = tokens.transpose(1, 2).reshape(bt, -1, h, w)

        clip_mean = x.flatten(2).transpose(1, 2).reshape(b, num_frames, h * w, -1).mean(dim=1)  # (B, H*W, A)
        t_att = self.text_to_vision(t, clip_mean)
        return self.vision_up(x_att), self.text_up(t_att)
