"""Tokenizers of SAMWISE: RoBERTa's (downloaded by name) or the packaged offline tiny one.

The tiny tokenizer is a RoBERTa-style byte-level BPE (`<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, `<mask>`
last; captions wrapped as `<s> ... </s>`; prefix space added like RoBERTa) trained on a fixed corpus of
referring expressions. `build_tiny_roberta_tokenizer` is deterministic; the packaged copy under
`videoglamm/assets/tokenizers/samwise-tiny/` was written by `python -m videoglamm.samwise.tokenizer`.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from videoglamm.errors import ConfigError

TINY_VOCAB_SIZE = 400
ASSETS = Path(__file__).resolve().parent.parent / "assets" / "tokenizers"
PACKAGED = "packaged:"

_COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black", "pink", "brown"]
_SHAPES = ["circle", "square", "triangle", "diamond", "star", "ring", "object", "shape", "person", "car"]
_MOTIONS = ["moving left", "moving right", "moving up", "moving down", "standing still", "walking", "running",
            "jumping", "turning around", "which moves", "that appears last", "that disappears first",
            "that appears first", "leaving the scene", "entering from the left"]


def _corpus() -> list[str]:
    lines = []
    for colour, shape in itertools.product(_COLOURS, _SHAPES):
        lines.append(f"the {colour} {shape}")
    for shape, motion in itertools.product(_SHAPES, _MOTIONS):
        lines.append(f"the {shape} {motion}")
        lines.append(f"a {shape} is {motion} in the video")
    return lines


def build_tiny_roberta_tokenizer(vocab_size: int = TINY_VOCAB_SIZE) -> Any:
    """Train the tiny RoBERTa-style tokenizer.

    Returns:
        A `PreTrainedTokenizerFast` with exactly `vocab_size` entries and RoBERTa's special-token ids.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 1, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.add_special_tokens(["<mask>"])  # last id, as in RoBERTa
    if tok.get_vocab_size() != vocab_size:
        raise RuntimeError(f"tiny tokenizer trained to {tok.get_vocab_size()} entries, expected {vocab_size}")
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=True)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")


def load_tokenizer(name: str) -> Any:
    """Load a tokenizer named in `TextEncoderConfig.tokenizer`.

    Args:
        name: "packaged:<name>" for a shipped tokenizer, else a Hugging Face name or folder.

    Returns:
        A fast tokenizer (offsets are needed by the motion prompt).

    Raises:
        ConfigError: the packaged tokenizer does not exist, or the named one cannot be loaded.
    """
    from transformers import AutoTokenizer

    if name.startswith(PACKAGED):
        path = ASSETS / name[len(PACKAGED):]
        if not (path / "tokenizer.json").is_file():
            raise ConfigError(f"no packaged tokenizer at {path}; regenerate it with python -m videoglamm.samwise.tokenizer")
        return AutoTokenizer.from_pretrained(str(path))
    try:
        return AutoTokenizer.from_pretrained(name, use_fast=True)
    except OSError as err:
        raise ConfigError(f"cannot load tokenizer {name!r}: {err}. Download it once (needs network) or point "
                          "text.tokenizer at a local folder") from err


if __name__ == "__main__":  # regenerate the packaged copy
    out = ASSETS / "samwise-tiny"
    build_tiny_roberta_tokenizer().save_pretrained(out)
    print(f"wrote {out}")
