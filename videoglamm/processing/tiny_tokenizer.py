"""The offline tokenizer of the tiny presets: a byte-level BPE trained on a small fixed corpus.

The Phi-3 tokenizer cannot be downloaded on every machine, so `videoglamm-tiny` ships its own. Byte-level
BPE can encode any text (unknown words fall back to bytes). `build_tiny_tokenizer` is deterministic; the
packaged copy under `videoglamm/assets/tokenizers/videoglamm-tiny/` was written by it
(`python -m videoglamm.processing.tiny_tokenizer`).
"""

from __future__ import annotations

import itertools
from pathlib import Path

from videoglamm.processing.tokens import CHAT_TAGS, SEG_TOKEN

TINY_VOCAB_SIZE = 512
# ids 0..2 mirror the roles of Phi-3's <unk>/<s>/<|endoftext|>; [SEG] is appended last as in the release.
BASE_SPECIALS = ("<unk>", "<s>", "<|endoftext|>", *CHAT_TAGS)
ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "tokenizers" / "videoglamm-tiny"

_COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "cyan", "pink", "black"]
_SHAPES = ["circle", "square", "triangle", "star", "diamond", "cross", "ring", "hexagon"]
_MOTIONS = ["moving left", "moving right", "moving up", "moving down", "standing still", "moving"]
_PHRASES = [
    "You are a helpful AI assistant.",
    "Can you segment {x} in this video?", "Please locate {x} in this video.",
    "What is {x} in this video? Please respond with segmentation masks.",
    "Perform spatial segmentation of {x}.", "It is [SEG].", "Sure, [SEG].", "Sure, it is [SEG].",
    "Sure, the segmentation result is [SEG].", "[SEG].",
    "Could you please give me a detailed description of the video? Please respond with interleaved "
    "segmentation masks for the corresponding parts of the answer.",
    "<p> {x} </p> [SEG] appears in the video while <p> {x} </p> [SEG] moves across the background.",
    "the object that appears first", "the object that appears last", "the shape that leaves early",
    "in frames: the video shows a person a man a woman a dog a car riding walking holding",
]


def _corpus() -> list[str]:
    lines = []
    for colour, shape in itertools.product(_COLOURS, _SHAPES):
        lines.append(f"the {colour} {shape}")
        for motion in _MOTIONS:
            lines.append(f"the {shape} {motion}")
    for phrase in _PHRASES:
        lines.extend(phrase.replace("{x}", f"the {c} {s}") for c, s in zip(_COLOURS, _SHAPES))
    return lines


def build_tiny_tokenizer(vocab_size: int = TINY_VOCAB_SIZE):
    """Train the tiny byte-level BPE tokenizer and wrap it as a `PreTrainedTokenizerFast`.

    Returns:
        A tokenizer of exactly `vocab_size` entries whose last id is `[SEG]`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # the last slot is [SEG]
        special_tokens=list(BASE_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    if tok.get_vocab_size() != vocab_size - 1:
        raise RuntimeError(f"tiny tokenizer trained to {tok.get_vocab_size()} entries, expected {vocab_size - 1}")
    # "<s>" leads every text tokenized with special tokens: the shipped demo model was trained with a leading
    # BOS, and the processor adds one only where the tokenizer does (as the official).
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B:1", special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="<|endoftext|>", pad_token="<unk>",
        additional_special_tokens=list(CHAT_TAGS),
    )
    fast.add_tokens([SEG_TOKEN])  # a normal added token, as in the official release
    return fast


if __name__ == "__main__":  # regenerate the packaged copy
    build_tiny_tokenizer().save_pretrained(ASSET_DIR)
    print(f"wrote {ASSET_DIR}")
