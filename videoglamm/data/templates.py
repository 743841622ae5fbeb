"""Question/answer templates per task and the caption rewrites that put `[SEG]` where masks belong.

Every random choice goes through a `random.Random` handed in by the reader, so a sample's text is a
pure function of (seed, epoch, index). Questions never contain the visual placeholder: the processor
adds it. Image data gets exactly one (question, answer) pair per sample with the class or phrase in
the question (the official image loaders turned role strings into user messages and lost both).
"""

from __future__ import annotations

import random
import re

from videoglamm.processing.tokens import SEG_TOKEN  # re-exported for the readers

RVOS_QUESTIONS = (
    "Can you segment {phrase} in this video?",
    "Please locate {phrase} in this video.",
    "What is {phrase} in this video? Please respond with segmentation masks.",
    "Perform spatial segmentation of {phrase} in this video.",
)
IMAGE_SEG_QUESTIONS = (
    "Can you segment the {phrase} in this image?",
    "Please segment the {phrase} in this image.",
    "What is the {phrase} in this image? Please respond with a segmentation mask.",
)
SEG_ANSWERS = (
    "It is [SEG].",
    "Sure, [SEG].",
    "Sure, it is [SEG].",
    "Sure, the segmentation result is [SEG].",
    "[SEG].",
)
# Referring answers that restate the expression GCG-style (`answer_style="phrase"`). With the plain
# answers above the LM never needs the expression at the `[SEG]` position, so a model trained from
# scratch can learn one question-independent `[SEG]` embedding; copying the phrase into the answer puts
# it right before `[SEG]` and gives `result.phrases` a legend.
SEG_PHRASE_ANSWERS = (
    "Sure, <p> {phrase} </p> [SEG].",
    "It is <p> {phrase} </p> [SEG].",
    "<p> {phrase} </p> [SEG].",
)
# "inline": the expression directly before `[SEG]` with no tag between ("It is the red circle[SEG]."),
# so the token before `[SEG]` (`seg_projector.hidden_source: before_seg`) is the expression's last word.
SEG_INLINE_ANSWERS = (
    "Sure, it is {phrase}[SEG].",
    "It is {phrase}[SEG].",
    "{phrase}[SEG].",
)
ANSWER_STYLES = ("plain", "phrase", "inline")
GCG_QUESTIONS = (
    "Could you please give me a detailed description of the video? Please respond with interleaved "
    "segmentation masks for the corresponding parts of the answer.",
    "Can you provide a thorough description of this video? Please output with interleaved "
    "segmentation masks for the corresponding phrases.",
    "Please describe in detail the contents of the video. Please respond with interleaved "
    "segmentation masks for the corresponding parts of the answer.",
    "Could you give a comprehensive explanation of what can be found within this video? Please "
    "output with interleaved segmentation masks for the corresponding phrases.",
    "Could you give me an elaborate explanation of this video? Please respond with interleaved "
    "segmentation masks for the corresponding phrases.",
    "Could you provide me with a detailed analysis of this video? Please output with interleaved "
    "segmentation masks for the corresponding parts of the answer.",
)
VG_QUESTIONS = (
    "Can you spatiotemporally locate {phrase} in this video?",
    "{sentence} Please respond with a segmentation mask and time interval.",
    "In the video, {sentence} Please include spatial locations and time duration in your answer.",
    "Where and when does {phrase} appear in this video? Please respond with a segmentation mask "
    "and the frames.",
)
VG_ANSWERS = (
    "It is [SEG] in frames:({start},{end}).",
    "[SEG] frames:({start},{end}).",
    "Sure, it is [SEG], visible in frames:({start},{end}).",
)

# "[noun phrase](id1, id2)" in the MeViS / Ref-YTVOS / VidSTG / HC-STVG GCG captions.
_PHRASE_IDS = re.compile(r"\[([^\[\]]+)\]\(([^()]+)\)")
# "[SEG:k]" in ANet-Entities GCG captions; k may have several digits (the official regex took one).
_ANET_SEG = re.compile(r"\[SEG:(\d+)\]")


def clean_phrase(text: str) -> str:
    """Normalise a referring expression for insertion in a question (trim, drop the final period)."""
    return " ".join(text.split()).rstrip(".")


def rvos_question(rng: random.Random, phrase: str) -> str:
    return rng.choice(RVOS_QUESTIONS).format(phrase=clean_phrase(phrase))


def image_seg_question(rng: random.Random, phrase: str) -> str:
    return rng.choice(IMAGE_SEG_QUESTIONS).format(phrase=clean_phrase(phrase))


def seg_answer(rng: random.Random, phrase: str | None = None, style: str = "plain") -> str:
    """One referring answer with a single `[SEG]`.

    Args:
        rng: the reader's per-sample generator.
        phrase: the referring expression; required for `style="phrase"`.
        style: "plain" (official VideoGLaMM answers, e.g. "Sure, [SEG].") or "phrase"
            ("Sure, <p> the red circle </p> [SEG].") or "inline" ("It is the red circle[SEG].").
    """
    check_answer_style(style)
    if style == "plain":
        return rng.choice(SEG_ANSWERS)
    if phrase is None:
        raise ValueError(f'answer_style "{style}" needs the referring expression')
    templates = SEG_PHRASE_ANSWERS if style == "phrase" else SEG_INLINE_ANSWERS
    return rng.choice(templates).format(phrase=clean_phrase(phrase))


def check_answer_style(style: str) -> str:
    """Return `style` if it is one of `ANSWER_STYLES`, else raise ValueError (fail at construction)."""
    if style not in ANSWER_STYLES:
        raise ValueError(f"answer_style must be one of {ANSWER_STYLES}, got {style!r}")
    return style


def gcg_question(rng: random.Random) -> str:
    return rng.choice(GCG_QUESTIONS)


def vg_question(rng: random.Random, phrase: str) -> str:
    phrase = clean_phrase(phrase)
    sentence = phrase[:1].upper() + phrase[1:] + ("" if phrase.endswith("?") else ".")
    return rng.choice(VG_QUESTIONS).format(phrase=phrase, sentence=sentence)


def vg_answer(rng: random.Random, start: int, end: int) -> str:
    return rng.choice(VG_ANSWERS).format(start=start, end=end)


def phrase_caption_to_answer(caption: str) -> tuple[str, list[list[str]]]:
    """Rewrite `[phrase](id1, id2)` groups as `<p> phrase </p> [SEG]`.

    Args:
        caption: GCG caption with bracketed phrases followed by parenthesised object ids.

    Returns:
        The answer text and, per `[SEG]` in order, the list of object ids (strings) to union.
    """
    id_groups = [[i.strip() for i in ids.split(",") if i.strip()] for _, ids in _PHRASE_IDS.findall(caption)]
    answer = _PHRASE_IDS.sub(lambda m: f"<p> {m.group(1).strip()} </p> {SEG_TOKEN}", caption)
    return answer, id_groups


def anet_caption_to_answer(caption: str) -> tuple[str, list[str]]:
    """Rewrite ANet-Entities `[SEG:k]` markers as `[SEG]`.

    Returns:
        The answer text and the keys (`"[SEG:k]"`) of its `[SEG]`s in order.
    """
    keys = [f"[SEG:{k}]" for k in _ANET_SEG.findall(caption)]
    return _ANET_SEG.sub(SEG_TOKEN, caption), keys


def word_caption_to_answer(caption: str, token_pos: list[int]) -> str:
    """Wrap the words at `token_pos` (space-split indices) as `<p> word </p> [SEG]` (BURST-YTVIS)."""
    marked = set(token_pos)
    words = caption.split(" ")
    return " ".join(f"<p> {w} </p> {SEG_TOKEN}" if i in marked else w for i, w in enumerate(words))
