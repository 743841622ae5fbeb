"""Learning-rate schedule: linear warm-up from 0, then linear decay to 0 (DeepSpeed's WarmupDecayLR)."""

from __future__ import annotations

import torch


def warmup_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier after `step` optimizer updates."""
    if warmup_steps > 0 and step < warmup_steps:
        return step / warmup_steps
    remaining = total_steps - step
    return max(0.0, remaining / max(1, total_steps - warmup_steps))


def build_optimizer(params: list[torch.nn.Parameter], lr: float, betas: tuple[float, float],
                    weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the trainable parameters only (a torch optimizer, so DeepSpeed builds no fused Adam)."""
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int,
                    total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_decay(s, warmup_steps, total_steps))
