"""Convert the released SAMWISE checkpoints (`checkpoint["model"]` of the official `main.py`) to `SAMWISE`.

Official names (see tests/data/checkpoint_keys/samwise_release.tsv) -> ours:
  * `sam.*` -> `sam2.model.*` (the sam2 package's SAM 2.0 Hiera-B+), except
    `sam.sam_prompt_encoder.project_text.*` -> `prompt_projection.*` (and `project_motion_prompts` ->
    `motion_projection.*`);
  * fairseq RoBERTa `text_encoder.model.encoder.sentence_encoder.*` -> transformers `text_encoder.*`
    (HF's `token_type_embeddings` has no fairseq counterpart: zeros, as HF's own conversion sets them);
  * `cmt_adapters.{i}.*` -> `adapters.{i}.*` with descriptive names; the up-projection's
    ConvTranspose2d weight [A, Cv, 1, 1] becomes a Conv2d weight [Cv, A, 1, 1]; `spatial_pos_embed`
    [1, 1, 1, P^2, A] becomes [P^2, A];
  * `conditional_memory_encoder.*` -> `conditional_memory_encoder.*` (block and head renamed). The
    official CME block applies `norm1` after attention and `norm3` after the FFN (`layers.py:107-121`):
    they become `attention_norm` and `ffn_norm`; `norm2` is never applied (no gradient, no effect), so
    it is dropped.
Dropped through a named allow-list: RoBERTa's MLM head, fairseq's `version` and hub `_float_tensor`
buffers, `thop` profiling counters and the CME's unused `norm2`. `to_official_samwise` is the exact
inverse on everything kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from videoglamm.convert._strict import ConversionReport, check_conversion, expected_shapes, rename_by_templates, unwrap_container
from videoglamm.errors import CheckpointError

ROBERTA = "text_encoder.model.encoder.sentence_encoder."
SAM = "sam."
TOKEN_TYPES = "text_encoder.embeddings.token_type_embeddings.weight"
FAIRSEQ_VERSION = 3.0  # value of fairseq's `sentence_encoder.version` buffer

# official -> ours; `{}` is an index (layer, adapter, MLP layer).
_TEMPLATES: dict[str, str] = {
    f"{ROBERTA}embed_tokens.weight": "text_encoder.embeddings.word_embeddings.weight",
    f"{ROBERTA}embed_positions.weight": "text_encoder.embeddings.position_embeddings.weight",
    f"{ROBERTA}layernorm_embedding.weight": "text_encoder.embeddings.LayerNorm.weight",
    f"{ROBERTA}layernorm_embedding.bias": "text_encoder.embeddings.LayerNorm.bias",
    "sam.sam_prompt_encoder.project_text.layers.{}.weight": "prompt_projection.layers.{}.weight",
    "sam.sam_prompt_encoder.project_text.layers.{}.bias": "prompt_projection.layers.{}.bias",
    "sam.sam_prompt_encoder.project_motion_prompts.layers.{}.weight": "motion_projection.layers.{}.weight",
    "sam.sam_prompt_encoder.project_motion_prompts.layers.{}.bias": "motion_projection.layers.{}.bias",
    "conditional_memory_encoder.decision_token.weight": "conditional_memory_encoder.decision_token.weight",
    "conditional_memory_encoder.decision_class_head.weight": "conditional_memory_encoder.classifier.weight",
    "conditional_memory_encoder.decision_class_head.bias": "conditional_memory_encoder.classifier.bias",
}
for _fs, _hf in [("self_attn.q_proj", "attention.self.query"), ("self_attn.k_proj", "attention.self.key"),
                 ("self_attn.v_proj", "attention.self.value"), ("self_attn.out_proj", "attention.output.dense"),
                 ("self_attn_layer_norm", "attention.output.LayerNorm"), ("fc1", "intermediate.dense"),
                 ("fc2", "output.dense"), ("final_layer_norm", "output.LayerNorm")]:
    for _p in ("weight", "bias"):
        _TEMPLATES[f"{ROBERTA}layers.{{}}.{_fs}.{_p}"] = f"text_encoder.encoder.layer.{{}}.{_hf}.{_p}"
_MHA = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
for _p in _MHA:
    _TEMPLATES[f"cmt_adapters.{{}}.ca_V2T.multihead_attn.{_p}"] = f"adapters.{{}}.vision_to_text.attention.{_p}"
    _TEMPLATES[f"cmt_adapters.{{}}.ca_T2V.multihead_attn.{_p}"] = f"adapters.{{}}.text_to_vision.attention.{_p}"
    _TEMPLATES[f"cmt_adapters.{{}}.hsa.self_attn.{_p}"] = f"adapters.{{}}.hsa.attention.{_p}"
    _TEMPLATES[f"conditional_memory_encoder.transformerBlock.self_attn.{_p}"] = f"conditional_memory_encoder.block.attention.{_p}"
for _p in _BN:
    _TEMPLATES[f"cmt_adapters.{{}}.proj_vis_down.1.{_p}"] = f"adapters.{{}}.vision_down.1.{_p}"
    _TEMPLATES[f"cmt_adapters.{{}}.proj_vis_up.1.{_p}"] = f"adapters.{{}}.vision_up.1.{_p}"
for _p in ("weight", "bias"):
    _TEMPLATES[f"cmt_adapters.{{}}.hsa.linear.{_p}"] = f"adapters.{{}}.hsa.proj.{_p}"
    _TEMPLATES[f"cmt_adapters.{{}}.norm_pre_HSA.{_p}"] = f"adapters.{{}}.hsa.norm.{_p}"
    for _old, _new in [("linear1", "ffn_in"), ("linear2", "ffn_out"), ("norm1", "attention_norm"),
                       ("norm3", "ffn_norm")]:
        _TEMPLATES[f"conditional_memory_encoder.transformerBlock.{_old}.{_p}"] = f"conditional_memory_encoder.block.{_new}.{_p}"
_TEMPLATES.update({
    "cmt_adapters.{}.proj_vis_down.0.weight": "adapters.{}.vision_down.0.weight",
    "cmt_adapters.{}.proj_vis_up.0.weight": "adapters.{}.vision_up.0.weight",  # transposed, see below
    "cmt_adapters.{}.proj_text_down.0.weight": "adapters.{}.text_down.weight",
    "cmt_adapters.{}.proj_text_up.0.weight": "adapters.{}.text_up.weight",
    "cmt_adapters.{}.spatial_pos_embed": "adapters.{}.hsa.spatial_embed",  # reshaped, see below
})

# Source keys that are dropped, each with the reason (regex over the whole key, after `module.`).
DROP: dict[str, str] = {
    r"text_encoder\.model\.encoder\.lm_head\..*": "RoBERTa's masked-LM head: SAMWISE uses the encoder only",
    r"text_encoder\.model\.encoder\.sentence_encoder\.version": "fairseq serialisation version buffer",
    r"text_encoder\._float_tensor": "fairseq hub-interface device marker",
    r".*\.(total_params|total_ops)": "thop profiling counter (not a model tensor)",
    r"conditional_memory_encoder\.transformerBlock\.norm2\.(weight|bias)":
        "the official CME block never applies norm2 (norm1 follows attention, norm3 the FFN)",
}


def _is_projection(rest: str) -> bool:
    return rest.startswith(("sam_prompt_encoder.project_text.", "sam_prompt_encoder.project_motion_prompts."))


def convert_samwise(checkpoint: Mapping[str, Any], model: nn.Module) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Official SAMWISE state dict -> `SAMWISE` state dict, checked strictly against `model`.

    Args:
        checkpoint: the loaded file (`{"model": ...}`) or its state dict; keys may start with `module.`.
        model: the target `SAMWISE` (a meta-device build is enough), whose keys and shapes must all match.

    Returns:
        (state dict for `model.load_state_dict(strict=True)`, `ConversionReport`).

    Raises:
        CheckpointError: any missing, unexpected or mis-shaped key (all listed), or a non-tensor value.
    """
    state, container = unwrap_container(checkpoint)
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    sam_keys = {k: v for k, v in state.items() if k.startswith(SAM) and not _is_projection(k[len(SAM):])}
    rest = {k: v for k, v in state.items() if k not in sam_keys}
    out, sources, leftover = rename_by_templates(rest, _TEMPLATES)
    for key, value in sam_keys.items():
        target = "sam2.model." + key[len(SAM):]
        out[target], sources[target] = value, (key,)
    for key in list(out):
        if key.endswith("vision_up.0.weight") and isinstance(out[key], torch.Tensor):
            out[key] = out[key].transpose(0, 1)  # ConvTranspose2d [A, Cv, 1, 1] -> Conv2d [Cv, A, 1, 1]
        elif key.endswith("hsa.spatial_embed") and isinstance(out[key], torch.Tensor):
            out[key] = out[key].reshape(-1, out[key].shape[-1])
    embed = out.get("text_encoder.embeddings.word_embeddings.weight")
    if isinstance(embed, torch.Tensor):
        out[TOKEN_TYPES] = torch.zeros(1, embed.shape[1], dtype=embed.dtype, device=embed.device)
        sources[TOKEN_TYPES] = ("<zeros: fairseq RoBERTa has no token-type embedding>",)
    report = check_conversion("samwise", out, sources, leftover, expected_shapes(model), DROP, container=container)
    return out, report


def to_official_samwise(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`SAMWISE` state dict -> official names and layouts (the inverse of `convert_samwise` on kept keys).

    Raises:
        CheckpointError: a key has no official counterpart, or the token-type embedding is not zero
            (fairseq RoBERTa cannot represent it).
    """
    inverse = {tgt: src for src, tgt in _TEMPLATES.items()}
    out: dict[str, torch.Tensor] = {}
    sources: dict[str, tuple[str, ...]] = {}
    for key, value in state.items():
        if key == TOKEN_TYPES:
            if not value.is_meta and bool(value.abs().sum() != 0):
                raise CheckpointError(f"{key} is not zero: the official fairseq RoBERTa has no token types")
            continue
        if key.startswith("sam2.model."):
            out[SAM + key[len("sam2.model."):]] = value
            continue
        renamed, _, leftover = rename_by_templates({key: value}, inverse)
        if leftover:
            raise CheckpointError(f"{key} has no counterpart in the official SAMWISE checkpoint")
        (name, tensor), = renamed.items()
        if key.endswith("vision_up.0.weight"):
            tensor = tensor.transpose(0, 1)
        elif key.endswith("hsa.spatial_embed"):
            tensor = tensor.reshape(1, 1, 1, *tensor.shape)
        out[name] = tensor
        sources[name] = (key,)
    return out
