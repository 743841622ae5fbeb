"""Write the golden ids of transformers 4.x's slow `LlamaTokenizer` (the official's `use_fast=False`) for
tests/test_tokenizer_fidelity.py. Needs transformers 4.x (which still has the slow class) and sentencepiece:

    pip install --target /tmp/tf4 "transformers==4.46.3" "tokenizers<0.21" "huggingface_hub<1.0" sentencepiece protobuf
    PYTHONPATH=/tmp/tf4 python tests/data/slow_tokenizer/make_golden.py

It trains a small sentencepiece BPE (Llama-like settings), writes two Phi-3-like tokenizer folders (chat
tags stripping the whitespace after them and no BOS, like Phi-3; and BOS with the whitespace kept) and the
ids of the slow tokenizer for a fixed list of texts.
"""

import io
import json
import random
from pathlib import Path

import sentencepiece as spm
import transformers
from transformers import AutoTokenizer

HERE = Path(__file__).resolve().parent
CHAT = [("<|endoftext|>", False), ("<|assistant|>", True), ("<|system|>", True), ("<|end|>", True), ("<|user|>", True)]


def corpus():
    words = ("the red circle moves left and a blue box jumps over green triangle it is there what where video "
             "frame person dog car segment mask please respond sure you are helpful assistant café naïve 東京 12 "
             "345").split()
    rng = random.Random(0)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(1500)]


def texts():
    rng = random.Random(1)
    pieces = ["the", " red", " circle", "\n", " ", "  ", "<|end|>", "<|assistant|>", "<|user|>", "<|system|>", "[SEG]",
              "<p>", "</p>", "café", "12", "345", "東京", ".", ",", "?", "It", " is", "\t", "😀", "<unk>", "<s>",
              "</s>", "<|endoftext|>", "\u2581", "You are a helpful AI assistant."]
    fixed = ["", " ", "\n", "It is [SEG].", " It is", "<|system|>\nYou are a helpful AI assistant.<|end|>\n<|user|>\n",
             "\nWhat is the red circle?<|end|>\n<|assistant|>\n", "\nWhat?<|end|>\n<|assistant|>\nIt is [SEG].<|end|>"]
    return fixed + ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 14))) for _ in range(300)]


def folder(name, add_bos, rstrip, base):
    path = HERE / name
    path.mkdir(exist_ok=True)
    entry = dict(lstrip=False, normalized=False, single_word=False, special=True)
    added = {str(i): dict(entry, content=t, rstrip=False) for i, t in enumerate(("<unk>", "<s>", "</s>"))}
    added.update({str(base + i): dict(entry, content=t, rstrip=r and rstrip) for i, (t, r) in enumerate(CHAT)})
    (path / "tokenizer_config.json").write_text(json.dumps(dict(
        tokenizer_class="LlamaTokenizer", add_bos_token=add_bos, add_eos_token=False, legacy=False, bos_token="<s>",
        eos_token="<|endoftext|>", unk_token="<unk>", pad_token="<unk>", added_tokens_decoder=added,
        clean_up_tokenization_spaces=False, model_max_length=4096), indent=1) + "\n")
    return path


def main():
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()), model_writer=out, vocab_size=420, model_type="bpe", byte_fallback=True,
        character_coverage=1.0, normalization_rule_name="identity", add_dummy_prefix=True,
        remove_extra_whitespaces=False, split_digits=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1,
        minloglevel=2)
    model = out.getvalue()
    base = spm.SentencePieceProcessor(model_proto=model).get_piece_size()
    golden = {"transformers": transformers.__version__, "texts": texts(), "ids": {}}
    for name, add_bos, rstrip in [("phi3", False, True), ("bos_keep_ws", True, False)]:
        path = folder(name, add_bos, rstrip, base)
        (path / "tokenizer.model").write_bytes(model)
        tok = AutoTokenizer.from_pretrained(path, use_fast=False, legacy=False)
        tok.add_tokens("[SEG]")  # as the official: a normal added token
        assert type(tok).__name__ == "LlamaTokenizer"
        golden["ids"][name] = [tok(t).input_ids for t in golden["texts"]]
    (HERE / "golden_ids.json").write_text(json.dumps(golden, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
