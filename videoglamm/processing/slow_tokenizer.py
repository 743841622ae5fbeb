"""The slow sentencepiece Llama tokenizer that the official VideoGLaMM trained and ran with.

The official loads Phi-3's tokenizer with `use_fast=False` (training also passes `legacy=False`): transformers
4.x's sentencepiece `LlamaTokenizer`. transformers 5 has no such class (`AutoTokenizer` ignores `use_fast` and
its `LlamaTokenizer` is a `tokenizers` one), and that fast tokenizer gives other ids at the start of a text:
the slow one prefixes the whole text with "▁" and keeps that "▁" before a leading added token that is not one
of the named special tokens (Phi-3's `<|system|>` -> ids [29871, 32006]), and it keeps a leading space as an
extra "▁"; the fast one emits neither. The processor tokenizes the chat in chunks that each start a text, so
those differences reach every prompt. `SlowLlamaTokenizer` restores the 4.x rules on transformers' own
sentencepiece backend.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers.tokenization_utils_sentencepiece import SPIECE_UNDERLINE, SentencePieceBackend

# tokenizer_config.json classes whose tokenizer.model is read by this class (the official's slow Llama tokenizer).
LLAMA_CLASSES = ("LlamaTokenizer", "LlamaTokenizerFast", "SlowLlamaTokenizer")


class SlowLlamaTokenizer(SentencePieceBackend):
    """transformers 4.x `LlamaTokenizer` (slow) on a sentencepiece `tokenizer.model`.

    Args:
        vocab_file: the sentencepiece model.
        add_bos_token / add_eos_token: whether a call with special tokens adds `<s>` / `</s>` (Phi-3: from its
            tokenizer_config.json).
        legacy: False (the official's setting): no dummy "▁" after added tokens.
        add_prefix_space: prefix the text with "▁" as sentencepiece's dummy prefix would.
    """

    vocab_files_names = {"vocab_file": "tokenizer.model"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self, vocab_file: str, unk_token: str = "<unk>", bos_token: str = "<s>", eos_token: str = "</s>",
        pad_token: str | None = None, add_bos_token: bool = True, add_eos_token: bool = False,
        legacy: bool = False, add_prefix_space: bool = True, **kwargs: Any,
    ) -> None:
        self.add_bos_token, self.add_eos_token, self.add_prefix_space = add_bos_token, add_eos_token, add_prefix_space
        kwargs.pop("special_tokens_pattern", None)
        pattern = {(True, False): "bos", (False, True): "eos", (True, True): "bos_eos"}.get(
            (add_bos_token, add_eos_token), "none")
        super().__init__(
            vocab_file=vocab_file, unk_token=unk_token, bos_token=bos_token, eos_token=eos_token,
            pad_token=pad_token, add_bos_token=add_bos_token, add_eos_token=add_eos_token, legacy=legacy,
            add_prefix_space=add_prefix_space, special_tokens_pattern=pattern, **kwargs,
        )

    def tokenize(self, text: str, **kwargs: Any) -> list[str]:
        """Tokens of `text` as transformers 4.x's slow `LlamaTokenizer.tokenize`."""
        if self.legacy or not text:
            return super().tokenize(text, **kwargs)
        text = text.replace(SPIECE_UNDERLINE, " ")
        if self.add_prefix_space:
            text = SPIECE_UNDERLINE + text
        tokens = super().tokenize(text, **kwargs)
        # Only the named special tokens swallow the prefix; other added tokens (Phi-3's chat tags) keep it.
        if len(tokens) > 1 and tokens[0] == SPIECE_UNDERLINE and tokens[1] in self.all_special_tokens:
            tokens = tokens[1:]
        return tokens

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """The text of `tokens`: sentencepiece decodes each run between added tokens, which stay verbatim."""
        if tokens and self.add_prefix_space and tokens[0].startswith(SPIECE_UNDERLINE):
            tokens = [tokens[0][1:], *tokens[1:]]  # the prefix the tokenizer itself added
        out, run = [], []
        for token in tokens:
            if token in self._added_tokens_encoder:
                out += [self.sp_model.decode(run), token]
                run = []
            else:
                run.append(token)
        out.append(self.sp_model.decode(run))
        return "".join(out)

    def _decode(self, token_ids: int | list[int], skip_special_tokens: bool = False, **kwargs: Any) -> str:
        # Skip every added token marked special (Phi-3's chat tags), as the fast tokenizers do, not only the
        # named ones (bos, eos, unk, pad).
        if skip_special_tokens:
            ids = [token_ids] if isinstance(token_ids, int) else list(token_ids)
            special = {i for i, t in self._added_tokens_decoder.items() if t.special} | set(self.all_special_ids)
            token_ids = [i for i in ids if i not in special]
        return super()._decode(token_ids, skip_special_tokens=skip_special_tokens, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> tuple[str, ...]:
        """Save as transformers does, recording the settings this class reads back (`load_slow_tokenizer`)."""
        files = super().save_pretrained(save_directory, *args, **kwargs)
        path = Path(save_directory) / "tokenizer_config.json"
        cfg = json.loads(path.read_text())
        cfg.update(tokenizer_class="SlowLlamaTokenizer", add_bos_token=self.add_bos_token,
                   add_eos_token=self.add_eos_token, legacy=self.legacy, add_prefix_space=self.add_prefix_space)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))
        os.replace(tmp, path)
        return files


def is_slow_llama_folder(path: Path) -> bool:
    """True for a folder holding a sentencepiece `tokenizer.model` of a Llama-class tokenizer (Phi-3's)."""
    cfg_path = path / "tokenizer_config.json"
    if not ((path / "tokenizer.model").is_file() and cfg_path.is_file()):
        return False
    return json.loads(cfg_path.read_text()).get("tokenizer_class") in LLAMA_CLASSES


def load_slow_tokenizer(path: str | os.PathLike) -> SlowLlamaTokenizer:
    """`SlowLlamaTokenizer` from a folder's tokenizer.model and tokenizer_config.json (`legacy=False` unless the
    config says otherwise, like the official's loading)."""
    path = Path(path)
    cfg = json.loads((path / "tokenizer_config.json").read_text())
    return SlowLlamaTokenizer.from_pretrained(str(path), legacy=cfg.get("legacy", False))
