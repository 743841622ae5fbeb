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
