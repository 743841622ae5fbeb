"""Token ids and labels of one chat turn, built as the official VideoGLaMM builds them.

The official (VideoGPT+ `tokenizer_image_token`, VideoGLaMM `ConvGenerator_VideoGPTPlus.preprocess_fn_phi3`):
- the rendered chat is cut at the video marker and each piece is tokenized on its own, as the tokenizer does
  by default (with its BOS only if it adds one);
- if the first piece starts with BOS, that BOS stays at the front and every piece loses its first id;
- the pieces are joined by the visual placeholder ids;
- for training the whole conversation (prompt, answer, `<|end|>`) is tokenized so at once, and the labels
  ignore as many leading positions as the generation prompt alone has ids; the rest is supervised.
Tokenizing the answer apart would change its first token: with sentencepiece (`legacy=False`) the text after
`<|assistant|>` gets no "▁" prefix, the answer alone does.
"""

from __future__ import annotations

from typing import Any, Sequence

from videoglamm.errors import TokenCountError
from videoglamm.processing.tokens import END_TAG, IGNORE_INDEX


def chunk_ids(tokenizer: Any, chunks: Sequence[str], placeholder: Sequence[int]) -> list[int]:
    """Ids of text `chunks` joined by `placeholder`, each chunk tokenized alone (`tokenizer_image_token`)."""
    encoded = [list(tokenizer(chunk).input_ids) for chunk in chunks]
    bos = tokenizer.bos_token_id
    offset = 1 if bos is not None and encoded[0][:1] == [bos] else 0
    ids = encoded[0][:offset]
    for i, piece in enumerate(encoded):
        if i:
            ids.extend(placeholder)
        ids.extend(piece[offset:])
    return ids


def turn_ids(
    tokenizer: Any, before: str, after: str, placeholder: Sequence[int], answer: str | None = None
) -> tuple[list[int], list[int]]:
    """Ids and labels of one turn.

    Args:
        tokenizer: the model's tokenizer.
        before / after: the rendered generation prompt before / after the video marker (`after` ends with
            the assistant tag and its newline).
        placeholder: the visual placeholder ids that replace the marker.
        answer: the answer text without `<|end|>` (training), or None (generation).

    Returns:
        (ids, labels); labels are IGNORE_INDEX except on the answer and its `<|end|>`.

    Raises:
        TokenCountError: when the supervised span does not end at the last id (the tokenizer splits the
            answer differently with and without the closing `<|end|>`, or the answer holds the pad token).
            The official then drops the sample's text loss with a printed warning; here it is an error.
    """
    prompt = chunk_ids(tokenizer, [before, after], placeholder)
    if answer is None:
        return prompt, [IGNORE_INDEX] * len(prompt)
    ids = chunk_ids(tokenizer, [before, after + answer + END_TAG], placeholder)
    # preprocess_fn_phi3: the round without its closing <|end|>, plus one id for that <|end|>, must cover
    # every non-pad id, else the official ignores the whole sample.
    end = len(chunk_ids(tokenizer, [before, after + answer], placeholder)) + 1
    non_pad = sum(i != tokenizer.pad_token_id for i in ids)
    if end != non_pad or end != len(ids) or len(prompt) >= end:
        raise TokenCountError(
            f"cannot place the labels of answer {answer!r}: the conversation has {len(ids)} ids ({non_pad} not "
            f"padding), the prompt {len(prompt)}, the answer without {END_TAG} ends at {end}; remove padding or "
            "chat tokens from the answer"
        )
    return ids, [IGNORE_INDEX] * len(prompt) + ids[len(prompt):]
