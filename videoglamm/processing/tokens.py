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
