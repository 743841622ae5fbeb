"""Text prompts for SAM2's mask decoder: the contextual `<s>` prompt and the optional motion prompt.

The contextual prompt is the final (adapter-modified) hidden state of RoBERTa's `<s>` token projected by
an MLP (Dt -> D -> D -> D). It is appended as one sparse token after SAM2's two padding-point tokens (the
official layout, which the released weights expect). The motion prompt (off in the released models)
averages the hidden states of the sub-tokens inside verbs found by a tagger and projects them the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from sam2.modeling.sam2_utils import MLP
from torch import Tensor, nn

from videoglamm.errors import InputError, ShapeMismatchError

# A verb tagger maps a caption to the (start, end) character spans of its verbs.
VerbTagger = Callable[[str], list[tuple[int, int]]]


def prompt_mlp(text_dim: int, dim: int) -> MLP:
    """The 3-layer ReLU MLP (text_dim -> dim -> dim -> dim) that turns a text state into a prompt token."""
    return MLP(text_dim, dim, dim, num_layers=3)


def contextual_prompt(projection: nn.Module, text_hidden: Tensor) -> Tensor:
    """Project the `<s>` state of each caption: (B, L, Dt) -> (B, D)."""
    return projection(text_hidden[:, 0])


def spacy_verb_tagger(model: str = "en_core_web_sm") -> VerbTagger:
    """A tagger backed by spaCy (the official choice), imported only when asked for.

    Raises:
        InputError: spaCy or its English model is not installed.
    """
    try:
        import spacy

        nlp = spacy.load(model)
    except (ImportError, OSError) as err:
        raise InputError(f"the motion prompt needs spaCy with {model!r} installed "
                         f"(pip install spacy && python -m spacy download {model}), or pass verb_tagger=") from err

    def tag(caption: str) -> list[tuple[int, int]]:
        return [(tok.idx, tok.idx + len(tok.text)) for tok in nlp(caption) if tok.pos_ == "VERB"]

    return tag


def verb_token_mask(captions: Sequence[str], offsets: Tensor, tagger: VerbTagger) -> Tensor:
    """Mark sub-tokens whose character span lies inside a verb.

    Args:
        captions: B captions, as tokenized.
        offsets: (B, L, 2) character offsets from the tokenizer (special and pad tokens are (0, 0)).
        tagger: caption -> verb character spans.

    Returns:
        (B, L) bool.
    """
    mask = torch.zeros(offsets.shape[:2], dtype=torch.bool)
    for b, caption in enumerate(captions):
        for start, end in tagger(caption):
            inside = (offsets[b, :, 0] >= start) & (offsets[b, :, 1] <= end) & (offsets[b, :, 1] > offsets[b, :, 0])
            mask[b] |= inside.cpu()
    return mask


def motion_prompt(projection: nn.Module, text_hidden: Tensor, verb_mask: Tensor) -> Tensor:
    """Project the mean hidden state of each caption's verb sub-tokens: (B, L, Dt) -> (B, D).

    A caption without verbs falls back to its `<s>` state, so every caption has one motion token (the
    official gather picked a single, misaligned token when B > 1 or a verb had several sub-tokens).

    Raises:
        ShapeMismatchError: `verb_mask` is not (B, L).
    """
    if verb_mask.shape != text_hidden.shape[:2]:
        raise ShapeMismatchError(f"verb mask {tuple(verb_mask.shape)} must match text {tuple(text_hidden.shape[:2])}")
    weights = verb_mask.to(text_hidden.device, text_hidden.dtype)
    counts = weights.sum(1, keepdim=True)
    pooled = (text_hidden * weights.unsqueeze(-1)).sum(1) / counts.clamp(min=1)
    pooled = torch.where(counts > 0, pooled, text_hidden[:, 0])
    return projection(pooled)
