"""Build the model of a recipe and declare what it trains.

The same two functions run at the start of training, on resume and in `videoglamm export`, so the
trainable set (and with it the checkpoint keys) is defined in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from train.config import ModelSection, model_config

if TYPE_CHECKING:
    from videoglamm.modeling.videoglamm import VideoGLaMM


def build_model(cfg: ModelSection, seed: int, base_dir: str | Path | None = None) -> "VideoGLaMM":
    """The recipe's model, before LoRA: loaded from `base_dir` (or `cfg.weights`), else randomly
    initialised from `seed` (every rank gets the same weights).

    Args:
        cfg: the model section.
        seed: seeds the random initialisation.
        base_dir: a save_pretrained folder that overrides `cfg.weights` (the run's saved base).
    """
    from videoglamm.modeling.videoglamm import VideoGLaMM
    from videoglamm.processing.processor import VideoGLaMMProcessor

    weights = base_dir or cfg.weights
    if weights is not None:
        return VideoGLaMM.from_pretrained(weights)
    config = model_config(cfg)
    torch.manual_seed(seed)
    model = VideoGLaMM(config)
    model.processor = VideoGLaMMProcessor(config, VideoGLaMMProcessor.from_preset(cfg.preset).tokenizer)
    return model


def prepare_for_training(model: "VideoGLaMM", cfg: ModelSection) -> "VideoGLaMM":
    """Apply LoRA and the recipe's extra trainables; returns the model (changed in place)."""
    if cfg.lora and not model.has_lora:
        model.apply_lora()
    if cfg.train_llm:
        # A from-scratch LLM has nothing worth freezing; LoRA alone could not teach it language.
        model.language_model.requires_grad_(True)
    if cfg.gradient_checkpointing:
        model.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the trainable parameters, by name (what a checkpoint stores)."""
    return {n: p.detach().clone().contiguous() for n, p in model.named_parameters() if p.requires_grad}
