"""Text generation that captures the `[SEG]` hidden states on the way.

The visual tokens are spliced once into the prompt embeddings; decoding then feeds one token per step
through the KV cache. The hidden state that feeds the SEG projector is kept when it is produced, so no
extra forward pass and no re-encoding of the video is needed (the official pipeline does both).
`use_cache=False` recomputes the whole sequence every step; it exists to check the cached path against.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn


@dataclass
class GenerationOutput:
    """Attributes:
        token_ids: the generated ids (stop token excluded).
        seg_hidden: (num_seg, hidden) last-layer hidden states feeding the SEG projector, in order.
        stopped: True when a stop token ended generation (False: `max_new_tokens` reached).
    """

    token_ids: list[int]
    seg_hidden: torch.Tensor
    stopped: bool


def _pick(logits: torch.Tensor, do_sample: bool, temperature: float, top_p: float,
          generator: torch.Generator | None) -> int:
    if not do_sample:
        return int(logits.argmax(-1))
    probs = torch.softmax(logits.float() / max(temperature, 1e-5), -1)
    sorted_probs, order = probs.sort(descending=True)
    keep = sorted_probs.cumsum(-1) - sorted_probs < top_p
    sorted_probs = sorted_probs * keep
    choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
    return int(order[choice])


@torch.no_grad()
def generate(
    lm: nn.Module,
    prompt_embeds: torch.Tensor,
    *,
    seg_token_id: int,
    stop_ids: set[int],
    hidden_source: str = "before_seg",
    max_new_tokens: int = 256,
    use_cache: bool = True,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    phrase_index: Callable[[Sequence[int]], list[int]] | None = None,
) -> GenerationOutput:
    """Decode one sequence.

    Args:
        lm: a `Phi3ForCausalLM` (its `.model` and `.lm_head` are used directly).
        prompt_embeds: (1, L, hidden) prompt embeddings with the visual tokens already spliced in.
        seg_token_id: id of `[SEG]`.
        stop_ids: ids that end generation (`<|end|>`, the end-of-text id).
        hidden_source: "before_seg" keeps the hidden state of the position that predicts `[SEG]`;
            "seg" keeps the hidden state at the `[SEG]` position (computed when `[SEG]` is fed back);
            "phrase" averages that one with the hidden states of the phrase tokens before it.
        max_new_tokens: generation budget.
        use_cache: KV cache (default) or full recomputation every step.
        do_sample, temperature, top_p, generator: sampling; greedy unless `do_sample`.
        phrase_index: for "phrase": maps the generated ids so far (ending with `[SEG]`) to k per id, k > 0 at
            the phrase of the k-th `[SEG]` (`VideoGLaMMProcessor.generated_phrase_index`).

    Returns:
        `GenerationOutput`.
    """
    if hidden_source == "phrase" and phrase_index is None:
        raise ValueError('hidden_source "phrase" needs phrase_index (see VideoGLaMMProcessor.generated_phrase_index)')
    embed = lm.get_input_embeddings()
    cache_arg = _cache_argument(type(lm.model))
    tokens: list[int] = []
    token_hidden: list[torch.Tensor] = []  # hidden state at each generated token, once it has been fed
    seg_hidden: list[torch.Tensor] = []
    past = None
    sequence = prompt_embeds
    step_input = prompt_embeds
    stopped = False
    pending_seg = False  # "seg"/"phrase" source: the hidden state of a just-emitted [SEG] is still to be computed
    for _ in range(max_new_tokens + 1):
        if len(tokens) == max_new_tokens and not pending_seg:
            break
        if use_cache:
            out = lm.model(inputs_embeds=step_input, use_cache=True, **{cache_arg: past})
            past = getattr(out, cache_arg)
        else:
            out = lm.model(inputs_embeds=sequence, use_cache=False)
        last = out.last_hidden_state[:, -1]  # (1, hidden)
        if tokens:
            token_hidden.append(last[0])
        if pending_seg:
            seg_hidden.append(last[0] if hidden_source == "seg" else _phrase_mean(tokens, token_hidden, phrase_index))
            pending_seg = False
        if len(tokens) == max_new_tokens:
            break
        token = _pick(lm.lm_head(last)[0], do_sample, temperature, top_p, generator)
        if token in stop_ids:
            stopped = True
            break
        tokens.append(token)
        if token == seg_token_id:
            if hidden_source == "before_seg":
                seg_hidden.append(last[0])
            else:
                pending_seg = True
        step_input = embed(torch.tensor([[token]], device=prompt_embeds.device))
        if not use_cache:
            sequence = torch.cat([sequence, step_input], dim=1)
    hidden = torch.stack(seg_hidden) if seg_hidden else prompt_embeds.new_zeros(0, prompt_embeds.shape[-1])
    return GenerationOutput(token_ids=tokens, seg_hidden=hidden, stopped=stopped)


@functools.lru_cache(maxsize=None)
def _cache_argument(model_cls: type) -> str:
    """The KV-cache keyword of the installed transformers' decoder: `cache` (5.x; `past_key_values` is
    deprecated there, warning on every call) or `past_key_values` (4.x). The output field has the same name."""
    return "cache" if "cache" in inspect.signature(model_cls.forward).parameters else "past_key_values"


def _phrase_mean(tokens: list[int], token_hidden: list[torch.Tensor],
                 phrase_index: Callable[[Sequence[int]], list[int]]) -> torch.Tensor:
    """Mean of the last `[SEG]`'s hidden state and its phrase's (as in `seg_hidden_states`)."""
    index = phrase_index(tokens)
    k = tokens.count(tokens[-1])  # tokens[-1] is the [SEG] just fed: it is the k-th one
    rows = [i for i, v in enumerate(index[:-1]) if v == k] + [len(tokens) - 1]
    return torch.stack([token_hidden[i] for i in rows]).mean(0)


@dataclass
class _Row:
    """Decoding state of one sequence of a batch."""

    tokens: list[int]
    token_hidden: list[torch.Tensor]
    seg_hidden: list[torch.Tensor]
    pending_seg: bool = False
    stopped: bool = False


@torch.no_grad()
def generate_batch(
    lm: nn.Module,
    prompt_embeds: Sequence[torch.Tensor],
    *,
    seg_token_id: int,
    stop_ids: set[int],
    hidden_source: str = "before_seg",
    max_new_tokens: int = 256,
    use_cache: bool = True,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    phrase_index: Callable[[Sequence[int]], list[int]] | None = None,
) -> list[GenerationOutput]:
    """Decode several sequences together: left padding, one KV cache, each row stopping on its own.

    The prompts are left-padded to the longest, with an attention mask and position ids that start at 0
    at each row's first real token, so every row sees what `generate` would show it. A row that stops
    (a stop id, or its budget with no `[SEG]` state still to compute) leaves the batch: its cache rows
    are dropped and the columns every remaining row pads are trimmed. Greedy rows equal `generate`'s.

    Args:
        lm: a `Phi3ForCausalLM`.
        prompt_embeds: per sequence (L_i, hidden) prompt embeddings, visual tokens spliced in.
        seg_token_id, stop_ids, hidden_source, max_new_tokens, use_cache, phrase_index: as in `generate`.
        do_sample, temperature, top_p, generator: sampling; rows draw from `generator` in row order each
            step, so sampled rows differ from one-at-a-time `generate` calls with the same seed.

    Returns:
        one `GenerationOutput` per prompt, in order.

    Raises:
        ValueError: no prompts, prompts of different widths, or "phrase" without `phrase_index`.
    """
    if hidden_source == "phrase" and phrase_index is None:
        raise ValueError('hidden_source "phrase" needs phrase_index (see VideoGLaMMProcessor.generated_phrase_index)')
    if not prompt_embeds:
        raise ValueError("generate_batch needs at least one prompt")
    if len({(e.ndim, e.shape[-1]) for e in prompt_embeds}) != 1 or prompt_embeds[0].ndim != 2:
        raise ValueError(f"prompt_embeds must all be (L_i, hidden); got {[tuple(e.shape) for e in prompt_embeds]}")
    embed = lm.get_input_embeddings()
    first = prompt_embeds[0]
    device = first.device
    width = max(e.shape[0] for e in prompt_embeds)
    inputs = first.new_zeros(len(prompt_embeds), width, first.shape[-1])
    mask = torch.zeros(len(prompt_embeds), width, dtype=torch.long, device=device)
    for i, e in enumerate(prompt_embeds):
        inputs[i, width - e.shape[0]:] = e
        mask[i, width - e.shape[0]:] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    rows = [_Row([], [], []) for _ in prompt_embeds]
    active = list(range(len(rows)))  # batch position -> row
    cache = None
    step_input, step_positions = inputs, positions
    while active:
        if use_cache:
            out = lm.model(inputs_embeds=step_input, attention_mask=mask, position_ids=step_positions, cache=cache,
                           use_cache=True)
            cache = out.cache
        else:
            out = lm.model(inputs_embeds=inputs, attention_mask=mask, position_ids=positions, use_cache=False)
        last = out.last_hidden_state[:, -1]  # (B, hidden)
        logits = lm.lm_head(last)
        keep, next_tokens = [], []
        for b, r in enumerate(active):
            row = rows[r]
            if row.tokens:
                row.token_hidden.append(last[b])
            if row.pending_seg:
                row.seg_hidden.append(last[b] if hidden_source == "seg"
                                      else _phrase_mean(row.tokens, row.token_hidden, phrase_index))
                row.pending_seg = False
            if len(row.tokens) == max_new_tokens:
                continue
            token = _pick(logits[b], do_sample, temperature, top_p, generator)
            if token in stop_ids:
                row.stopped = True
                continue
            row.tokens.append(token)
            if token == seg_token_id:
                if hidden_source == "before_seg":
                    row.seg_hidden.append(last[b])
                else:
                    row.pending_seg = True
            if len(row.tokens) < max_new_tokens or row.pending_seg:
                keep.append(b)
                next_tokens.append(token)
        if not keep:
            break
        if len(keep) < len(active):
            index = torch.tensor(keep, device=device)
            if cache is not None:
                cache.batch_select_indices(index)
            mask, positions = mask[index], positions[index]
            inputs = inputs if use_cache else inputs[index]
            active = [active[b] for b in keep]
            # Columns that every remaining row pads carry nothing: trim them (and their cache entries).
            drop = int(mask.argmax(1).min()) if mask.shape[1] else 0
            if drop:
                mask, positions = mask[:, drop:], positions[:, drop:]
                inputs = inputs if use_cache else inputs[:, drop:]
                if cache is not None:
                    for layer in cache.layers:
                        layer.keys, layer.values = layer.keys[:, :, drop:], layer.values[:, :, drop:]
        step_input = embed(torch.tensor(next_tokens, device=device)[:, None])
        step_positions = positions[:, -1:] + 1
        mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
        positions = torch.cat([positions, step_positions], dim=1)
        if not use_cache:
            inputs = torch.cat([inputs, step_input], dim=1)
    hidden = first.shape[-1]
    return [GenerationOutput(token_ids=row.tokens, stopped=row.stopped,
                             seg_hidden=torch.stack(row.seg_hidden) if row.seg_hidden else first.new_zeros(0, hidden))
            for row in rows]
