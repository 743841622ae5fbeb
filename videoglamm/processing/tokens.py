"""Token strings and the Phi-3 chat format shared by the processor, the data readers and generation."""

from __future__ import annotations

SEG_TOKEN = "[SEG]"
VIDEO_TOKEN = "<video>"  # text marker; the processor expands it into placeholder ids
PHRASE_OPEN = "<p>"
PHRASE_CLOSE = "</p>"

SYSTEM_TAG = "<|system|>"
USER_TAG = "<|user|>"
ASSISTANT_TAG = "<|assistant|>"
END_TAG = "<|end|>"
CHAT_TAGS = (SYSTEM_TAG, USER_TAG, ASSISTANT_TAG, END_TAG)

IGNORE_INDEX = -100


def render_prompt(system: str, user: str) -> str:
    """The Phi-3 chat text up to the start of the assistant answer.

    `<|system|>\\n{system}<|end|>\\n<|user|>\\n{user}<|end|>\\n<|assistant|>\\n`
    """
    return f"{SYSTEM_TAG}\n{system}{END_TAG}\n{USER_TAG}\n{user}{END_TAG}\n{ASSISTANT_TAG}\n"


def render_answer(answer: str) -> str:
    """The supervised part of a turn: the answer and its closing `<|end|>`."""
    return f"{answer}{END_TAG}"


def phrase_spans(text: str) -> list[tuple[int, int] | None]:
    """Per `[SEG]` of `text`, in order, the character span of the phrase it grounds: the words inside a
    `<p> ... </p>` that ends right before it (only whitespace between `</p>` and `[SEG]`), without the
    surrounding whitespace; None for a `[SEG]` that follows no phrase."""
    spans: list[tuple[int, int] | None] = []
    start = 0
    while (seg := text.find(SEG_TOKEN, start)) >= 0:
        before = text[:seg].rstrip()
        span = None
        if before.endswith(PHRASE_CLOSE):
            close = len(before) - len(PHRASE_CLOSE)
            open_ = before.rfind(PHRASE_OPEN, 0, close)
            inner = before[open_ + len(PHRASE_OPEN):close] if open_ >= 0 else ""
            if inner.strip() and SEG_TOKEN not in inner:
                first = open_ + len(PHRASE_OPEN) + (len(inner) - len(inner.lstrip()))
                span = (first, first + len(inner.strip()))
        spans.append(span)
        start = seg + len(SEG_TOKEN)
    return spans


def phrase_token_index(text: str, offsets: list[tuple[int, int]]) -> list[int]:
    """Per token (character `offsets` into `text`): k when it lies in the phrase of the k-th `[SEG]`
    (1-based, see `phrase_spans`), else 0."""
    index = [0] * len(offsets)
    for k, span in enumerate(phrase_spans(text), start=1):
        if span is None:
            continue
        for t, (a, b) in enumerate(offsets):
            if a < span[1] and b > span[0]:
                index[t] = k
    return index
