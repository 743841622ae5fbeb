"""What a fine-tuning run changes on a model, and reading its checkpoints back.

Shared by `train/` (which writes the checkpoints) and `videoglamm export` (which turns one into a
`from_pretrained` folder), so the trainable set and the file names have one definition.

A training checkpoint folder holds `trainable.safetensors` (every trainable tensor, unsharded) and
`trainer_state.json` (step, data position, and the recipe under "recipe").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from videoglamm.errors import CheckpointError
from videoglamm.modeling.persistence import copy_trainable

if TYPE_CHECKING:
    from videoglamm.modeling.videoglamm import VideoGLaMM

STATE_FILE = "trainer_state.json"
TRAINABLE_FILE = "trainable.safetensors"


def apply_finetune_setup(model: "VideoGLaMM", lora: bool, train_llm: bool) -> "VideoGLaMM":
    """LoRA on the LLM (`config.lora`) and/or every LLM weight trainable (for from-scratch models)."""
    if lora and not model.has_lora:
        model.apply_lora()
    if train_llm:
        # A from-scratch LLM has nothing worth freezing; LoRA alone could not teach it language.
        model.language_model.requires_grad_(True)
    return model


def load_trainable(model: torch.nn.Module, folder: str | Path) -> None:
    """Copy a checkpoint's trainable tensors into `model`, strictly (same names as its trainable set).

    Raises:
        CheckpointError: missing file, missing/unexpected names or shape mismatches.
    """
    from safetensors.torch import load_file

    path = Path(folder) / TRAINABLE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; pass a checkpoints/step_* folder of a training run")
    copy_trainable(model, load_file(path), path,
                   hint="; was it written by a run with the same model recipe (lora, train_llm)?")


def read_trainer_state(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; {folder} is not a training checkpoint")
    return json.loads(path.read_text())


def run_writes_base(weights: str | None, sam2_weights: str | None, llm_weights: str | None = None) -> bool:
    """Whether a run's starting model exists nowhere as one folder, so the trainer saves it as the run's
    `base/`: a random initialisation (no `model.weights`), or `model.weights` with another SAM2 or LLM."""
    return not weights or bool(sam2_weights) or bool(llm_weights)


def base_model_dir(checkpoint: str | Path, recipe: dict[str, Any]) -> Path:
    """Where the weights the run started from live: the recipe's `model.weights`, or the run's `base/`
    (see `run_writes_base`) two levels above the checkpoint."""
    weights = recipe["model"].get("weights")
    if not run_writes_base(weights, recipe["model"].get("sam2_weights"), recipe["model"].get("llm_weights")):
        return Path(weights)
    return Path(checkpoint).resolve().parent.parent / "base"


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> "VideoGLaMM":
    """Build the run's model, load the checkpoint's trainable weights, merge LoRA and `save_pretrained`.

    Raises:
        CheckpointError: the checkpoint or its base model is missing or does not match.
    """
    from videoglamm.modeling.videoglamm import VideoGLaMM

    from videoglamm.model_card import trained_from

    state = read_trainer_state(checkpoint)
    recipe = state["recipe"]
    base = base_model_dir(checkpoint, recipe)
    if not (base / "config.json").is_file():
        raise CheckpointError(f"the base model of {checkpoint} is missing: expected a save_pretrained "
                              f"folder at {base}")
    model = VideoGLaMM.from_pretrained(base)
    apply_finetune_setup(model, recipe["model"].get("lora", False), recipe["model"].get("train_llm", False))
    load_trainable(model, checkpoint)
    if model.has_lora:
        model.merge_lora()
    model.eval()
    model.card = trained_from(checkpoint, state)
    model.save_pretrained(out)
    return model
