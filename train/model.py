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
    initialised from `seed` (every rank gets the same weights); a fresh run (no `base_dir`) then takes
    its SAM2 from `cfg.sam2_weights` and its LLM from `cfg.llm_weights` when set.

    Args:
        cfg: the model section.
        seed: seeds the random initialisation.
        base_dir: a save_pretrained folder that overrides `cfg.weights` (the run's saved base).
    """
    from videoglamm.modeling.sam2_weights import copy_sam2_weights
    from videoglamm.modeling.videoglamm import VideoGLaMM
    from videoglamm.processing.processor import VideoGLaMMProcessor

    if base_dir is not None:  # a run's saved base already holds its SAM2 and LLM
        return VideoGLaMM.from_pretrained(base_dir)
    if cfg.weights is not None:
        model = VideoGLaMM.from_pretrained(cfg.weights)
    else:
        config = model_config(cfg)
        torch.manual_seed(seed)
        model = VideoGLaMM(config)
        model.processor = VideoGLaMMProcessor(config, VideoGLaMMProcessor.from_preset(cfg.preset).tokenizer)
    if cfg.sam2_weights is not None:
        copy_sam2_weights(model.mask_decoder.model, cfg.sam2_weights)
    if cfg.llm_weights is not None:
        copy_llm_weights(model, cfg.llm_weights)
    return model


def copy_llm_weights(model: "VideoGLaMM", path: str | Path) -> None:
    """Copy a language-model state dict (a `torch.save` file) into `model.language_model`, strictly.

    Raises:
        CheckpointError: the file is missing or unreadable, or its keys or shapes differ from the model's
            (all of them listed); the model is unchanged when this is raised.
    """
    from videoglamm.errors import CheckpointError
    from videoglamm.modeling.persistence import load_state_strict

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model.llm_weights: {path} does not exist; write it with train/llm_synthetic.py")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"model.llm_weights: cannot read {path}: {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"model.llm_weights: {path} does not hold a state dict of tensors")
    load_state_strict(model.language_model, state, f"model.llm_weights {path}",
                      hint="; was it written by train/llm_synthetic.py for this recipe's LLM?")


def prepare_for_training(model: "VideoGLaMM", cfg: ModelSection) -> "VideoGLaMM":
    """Apply LoRA, the recipe's extra trainables and gradient checkpointing; returns the model."""
    from videoglamm.modeling.finetune import apply_finetune_setup

    apply_finetune_setup(model, cfg.lora, cfg.train_llm)
    if cfg.gradient_checkpointing:
        lm = model.language_model
        kwargs = {"use_reentrant": False}  # non-reentrant: works when only some inputs require grad
        if hasattr(lm, "activation_checkpointing_enable"):  # transformers >= 5.x name
            lm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return model


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the trainable parameters, by name (what a checkpoint stores)."""
    return {n: p.detach().clone().contiguous() for n, p in model.named_parameters() if p.requires_grad}
