"""Rebuild the official training starting point from Phi-3 and the VideoGPT+ files.

The official recipe loads Phi-3-mini, the VideoGPT+ `non_lora_trainables.bin` (the two V->L projectors),
merges the VideoGPT+ LoRA (r=128, alpha=256 on `qkv_proj`, `o_proj`, `gate_up_proj`, `down_proj`) into the
LLM and resizes the vocabulary to `len(tokenizer)` (32012, `[SEG]` added). This produces exactly that, under
our keys: `llm.*`, `image_adapter.*`, `video_adapter.*`. The towers, SAM2 and the SEG projector are not in
these files; the report names where they come from.

Merge: W <- W + (B @ A) * alpha / r, computed in float32 and cast back to W's dtype (what peft's
`merge_and_unload` does, without rounding the update to a low-precision dtype first).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from videoglamm.config import VideoGLaMMConfig
from videoglamm.convert._strict import (
    ConversionReport,
    check_conversion,
    rename_by_templates,
    unwrap_container,
)
from videoglamm.convert.parts import not_covered_except, part_shapes
from videoglamm.errors import CheckpointError

LORA_PREFIX = "base_model.model."
LORA_TARGETS: tuple[str, ...] = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
_LORA_KEY = re.compile(re.escape(LORA_PREFIX) + r"(.+)\.lora_([AB])\.weight")
_VOCAB_ROWS = ("llm.model.embed_tokens.weight", "llm.lm_head.weight")

# non_lora_trainables.bin, after `base_model.model.` -> ours
_PROJECTOR_TEMPLATES: dict[str, str] = {
    f"model.{official}.{idx}.{leaf}": f"{ours}.fc{i + 1}.{leaf}"
    for official, ours in (("mm_projector", "video_adapter"), ("image_mm_projector", "image_adapter"))
    for i, idx in enumerate((0, 2))
    for leaf in ("weight", "bias")
}


def merge_lora_weight(
    weight: torch.Tensor, lora_a: torch.Tensor, lora_b: torch.Tensor, scale: float
) -> torch.Tensor:
    """W + (B @ A) * scale, in float32, cast back to W's dtype.

    Args:
        weight: (out, in). lora_a: (r, in). lora_b: (out, r). scale: alpha / r.
    """
    merged = weight.float() + (lora_b.float() @ lora_a.float()) * scale
    return merged.to(weight.dtype)


def _lora_pairs(
    adapter: Mapping[str, Any], llm_keys: Sequence[str], targets: Sequence[str]
) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Our weight key -> (lora_A key, lora_B key), and the problems found (unexpected, unpaired, missing)."""
    halves: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for key in adapter:
        m = _LORA_KEY.fullmatch(key)
        target = f"llm.{m.group(1)}.weight" if m else None
        if target is None or target not in llm_keys:
            problems.append(
                f"unexpected LoRA key {key} (expected {LORA_PREFIX}<Phi-3 linear>.lora_[AB].weight)")
            continue
        halves.setdefault(target, {})[m.group(2)] = key
    wanted = [k for k in llm_keys if any(k.endswith(f".{t}.weight") for t in targets)]
    for target in wanted:
        got = halves.get(target, {})
        for half in "AB":
            if half not in got:
                module = target[len("llm."):-len(".weight")]
                problems.append(f"missing LoRA key {LORA_PREFIX}{module}.lora_{half}.weight")
    extra = sorted(set(halves) - set(wanted))
    problems += [f"LoRA on {k}, which is not a target ({', '.join(targets)})" for k in extra]
    return {t: (h["A"], h["B"]) for t, h in halves.items() if set(h) == {"A", "B"} and t in wanted}, problems


def convert_videogptplus_with_report(
    phi3: Mapping[str, Any],
    *,
    lora: Mapping[str, Any],
    non_lora: Mapping[str, Any],
    config: VideoGLaMMConfig,
    lora_r: int = 128,
    lora_alpha: int = 256,
    lora_targets: Sequence[str] = LORA_TARGETS,
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Phi-3 + VideoGPT+ LoRA (merged) + VideoGPT+ projectors -> `llm.*`, `{image,video}_adapter.*`.

    Args:
        phi3: the Phi-3-mini state dict in Hugging Face on-disk names (`model.*`, `lm_head.weight`).
        lora: the VideoGPT+ `adapter_model` state dict (`base_model.model.<module>.lora_{A,B}.weight`).
        non_lora: the VideoGPT+ `non_lora_trainables.bin` (`base_model.model.model.{image_,}mm_projector.*`).
        config: the target config; embedding rows beyond `llm.vocab_size` are removed (the official resize).
        lora_r, lora_alpha: the adapter's rank and alpha (VideoGPT+: 128, 256; see its adapter_config.json).
        lora_targets: module names that must each carry an adapter in every layer.

    Returns:
        (our partial state dict, report with `not_covered` naming the parts these files do not hold).

    Raises:
        CheckpointError: any missing, unexpected or wrongly shaped key in any of the three inputs, LoRA
            ranks that differ from `lora_r`, or a Phi-3 vocabulary smaller than `llm.vocab_size`.
    """
    llm_expected = part_shapes(config, ("llm",))
    expected = part_shapes(config, ("image_adapter", "video_adapter", "llm"))
    base, container = unwrap_container(phi3, wrappers=())
    out: dict[str, Any] = {}
    sources: dict[str, tuple[str, ...]] = {}
    leftover: list[str] = []
    for key, value in base.items():
        if "llm." + key in llm_expected:
            out["llm." + key], sources["llm." + key] = value, (key,)
        else:
            leftover.append(key)

    notes: list[str] = []
    vocab = config.llm.vocab_size
    for key in _VOCAB_ROWS:
        value = out.get(key)
        if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[0] != vocab:
            if value.shape[0] < vocab:
                raise CheckpointError(
                    f"{sources[key][0]} has {value.shape[0]} rows, fewer than llm.vocab_size {vocab}")
            # The official recipe calls resize_token_embeddings(len(tokenizer)), which keeps the first rows.
            notes.append(
                f"{sources[key][0]}: kept the first {vocab} of {value.shape[0]} rows (vocabulary resize)")
            out[key] = value[:vocab]

    pairs, problems = _lora_pairs(lora, list(llm_expected), lora_targets)
    scale = lora_alpha / lora_r
    for target, (a_key, b_key) in pairs.items():
        weight, a, b = out.get(target), lora[a_key], lora[b_key]
        if not isinstance(weight, torch.Tensor):
            continue  # reported as missing below
        want_a, want_b = (lora_r, weight.shape[1]), (weight.shape[0], lora_r)
        if tuple(a.shape) != want_a or tuple(b.shape) != want_b:
            problems.append(f"{a_key} / {b_key}: shapes {list(a.shape)} / {list(b.shape)}, expected "
                            f"{list(want_a)} / {list(want_b)} for r={lora_r} on {sources[target][0]}")
            continue
        out[target] = merge_lora_weight(weight, a, b, scale)
        sources[target] = (sources[target][0], a_key, b_key)
    if problems:
        raise CheckpointError("VideoGPT+ LoRA adapter does not match Phi-3:\n  " + "\n  ".join(problems))

    projectors, proj_sources, proj_leftover = rename_by_templates(
        unwrap_container(non_lora, wrappers=())[0], _PROJECTOR_TEMPLATES, prefix=LORA_PREFIX)
    out.update(projectors)
    sources.update(proj_sources)
    report = check_conversion(
        "videogptplus", out, sources, leftover + proj_leftover, expected, {}, container=container,
    )
    report.notes = notes + [f"merged {len(pairs)} LoRA pairs (scale alpha/r = {lora_alpha}/{lora_r})"]
    report.not_covered = not_covered_except("llm", "image_adapter", "video_adapter")
    return out, report
