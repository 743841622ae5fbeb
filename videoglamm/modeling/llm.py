"""The language model: `transformers` Phi-3, with LoRA applied and merged through `peft`.

A preset model carries no adapter tensors (released checkpoints have their LoRA merged), so LoRA is a
fine-tuning step: `apply_lora` wraps the LLM for training and `merge_lora` folds it back.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from typing import TYPE_CHECKING, Iterator

from torch import nn

from videoglamm.config import LLMConfig, LoRAConfig

if TYPE_CHECKING:
    from transformers import Phi3ForCausalLM


def build_llm(cfg: LLMConfig) -> "Phi3ForCausalLM":
    """A randomly initialised Phi-3 causal LM of the configured size (on the current default device)."""
    from transformers import Phi3ForCausalLM

    model = Phi3ForCausalLM(cfg.to_phi3())
    model.generation_config.do_sample = False  # deterministic unless a caller asks for sampling
    return model


def causal_lm(llm: nn.Module) -> "Phi3ForCausalLM":
    """The underlying `Phi3ForCausalLM`, whether or not LoRA currently wraps it."""
    return llm.get_base_model() if has_lora(llm) else llm


def has_lora(llm: nn.Module) -> bool:
    # Only a model that went through `wrap_with_lora` can be a PeftModel, and that imported peft: a model
    # without LoRA never imports peft (whose bitsandbytes import prints a warning about CPU kernels).
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(llm, peft.PeftModel)


@contextlib.contextmanager
def quiet_bitsandbytes_import() -> Iterator[None]:
    """Import-time notice of bitsandbytes that an optional CPU 4-bit kernel package is absent (the
    built-in kernels are used instead): dropped, so that using peft does not print it on every run."""

    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "gemm_4bit_forward" not in record.getMessage()

    log = logging.getLogger("bitsandbytes.backends.cpu.ops")
    drop = _Drop()
    log.addFilter(drop)
    try:
        yield
    finally:
        log.removeFilter(drop)


def set_llm_trainable(llm: nn.Module) -> None:
    """Trainable in the LLM: LoRA tensors (when present), `embed_tokens` and `lm_head`; all else frozen."""
    base = causal_lm(llm)
    for name, param in llm.named_parameters():
        param.requires_grad = "lora_" in name
    base.get_input_embeddings().weight.requires_grad = True
    base.get_output_embeddings().weight.requires_grad = True


def wrap_with_lora(llm: nn.Module, cfg: LoRAConfig) -> nn.Module:
    """Return `llm` wrapped by a peft LoRA on exactly `cfg.target_modules` (matched by module-name suffix).

    Raises:
        ValueError: when it is already wrapped, or when no module matches a target.
    """
    with quiet_bitsandbytes_import():
        from peft import LoraConfig, get_peft_model

    if has_lora(llm):
        raise ValueError("LoRA is already applied to this model; merge it first")
    names = [name for name, module in llm.named_modules() if isinstance(module, nn.Linear)]
    for target in cfg.target_modules:
        if not any(n == target or n.endswith("." + target) for n in names):
            raise ValueError(f"LoRA target {target!r} matches no linear layer of the LLM")
    lora = LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, bias="none",
        target_modules=list(cfg.target_modules), task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft (<= 0.21) reads transformers' deprecated `is_gradient_checkpointing` alias: a FutureWarning on
        # every wrap about a call that is not ours to change; checkpointing itself uses the current API.
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        wrapped = get_peft_model(llm, lora)
    set_llm_trainable(wrapped)
    return wrapped


def unwrap_merged(llm: nn.Module) -> nn.Module:
    """Merge LoRA into the base weights and return the plain `Phi3ForCausalLM` (no adapter tensors)."""
    if not has_lora(llm):
        raise ValueError("no LoRA to merge")
    merged = llm.merge_and_unload()
    set_llm_trainable(merged)
    return merged
