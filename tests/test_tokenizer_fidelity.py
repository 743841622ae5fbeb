"""Token ids and labels equal the official's, on a sentencepiece tokenizer built like Phi-3's.

The test trains a small sentencepiece BPE model (byte fallback, identity normalisation, dummy prefix, as
Llama/Phi-3) and writes a release-like tokenizer folder: tokenizer.model plus a tokenizer_config.json whose
added tokens are Phi-3's chat tags (special, `rstrip` as in Phi-3's file), then `[SEG]` is added as a normal
token. The reference is re-derived here, independently of the package:
- `ReferenceSlowTokenizer`: transformers 4.x's slow `LlamaTokenizer(legacy=False)` (what the official loads
  with `use_fast=False`) written on the `sentencepiece` library itself;
- `official_ids`: VideoGPT+'s `tokenizer_image_token` and VideoGLaMM's `preprocess_fn_phi3` label masking.
Our processor puts `num_visual_tokens` placeholders where the official has 16 `<image>` ids, so the
comparison collapses each run of placeholder ids to one.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

spm = pytest.importorskip("sentencepiece")
from sentencepiece import sentencepiece_model_pb2  # noqa: E402

from videoglamm.config import VideoGLaMMConfig  # noqa: E402
from videoglamm.errors import InputError, TokenCountError  # noqa: E402
from videoglamm.processing.processor import VideoGLaMMProcessor, load_tokenizer  # noqa: E402

IGNORE, IMAGE = -100, -200
GOLDEN = Path(__file__).resolve().parent / "data" / "slow_tokenizer"
SPIECE = "\u2581"
SYSTEM = "<|system|>\nYou are a helpful AI assistant."
# Phi-3's added tokens (tokenizer_config.json of Phi-3-mini): the chat tags strip the whitespace after them.
CHAT = [("<|endoftext|>", False), ("<|assistant|>", True), ("<|system|>", True), ("<|end|>", True), ("<|user|>", True)]

QUESTIONS = [
    "What is the red circle?", "Can you segment the blue box in this video?",
    "Could you please give me a detailed description of the video? Please respond with interleaved "
    "segmentation masks for the corresponding parts of the answer.",
    " leading space", "trailing space ", "two\nlines", "naïve café 東京 😀", "numbers 12345 and 3.14", "tab\tthere",
]
ANSWERS = [
    None, "It is [SEG].", "Sure, [SEG].", "<p> the red circle </p> [SEG] and <p>a blue box</p>[SEG].",
    "A <p> person </p> [SEG] walks a <p> dog </p> [SEG] past 3 cars.", " leading space [SEG]", "trailing ",
    "\nnewline first", "  two spaces", "数字 123 😀 é", "[SEG][SEG]", "", "ends with [SEG]",
]


def _corpus() -> list[str]:
    words = ("the red circle moves left and a blue box jumps over green triangle it is there what where video "
             "frame person dog car segment mask please respond with interleaved masks sure you are helpful "
             "assistant could give me detailed description of answer parts café naïve 東京 12 345").split()
    rng = random.Random(0)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(1500)]


@pytest.fixture(scope="module")
def sp_model() -> bytes:
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()), model_writer=out, vocab_size=420, model_type="bpe", byte_fallback=True,
        character_coverage=1.0, normalization_rule_name="identity", add_dummy_prefix=True,
        remove_extra_whitespaces=False, split_digits=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1, minloglevel=2,
    )
    return out.getvalue()


def _release_folder(path, model: bytes, add_bos: bool, rstrip: bool):
    """A tokenizer folder as a slow Phi-3 tokenizer saves it (tokenizer.model + tokenizer_config.json)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "tokenizer.model").write_bytes(model)
    base = spm.SentencePieceProcessor(model_proto=model).get_piece_size()
    entry = dict(lstrip=False, normalized=False, single_word=False, special=True)
    added = {str(i): dict(entry, content=t, rstrip=False) for i, t in enumerate(("<unk>", "<s>", "</s>"))}
    added.update({str(base + i): dict(entry, content=t, rstrip=r and rstrip) for i, (t, r) in enumerate(CHAT)})
    added[str(base + len(CHAT))] = dict(entry, content="[SEG]", rstrip=False, special=False, normalized=True)
    (path / "tokenizer_config.json").write_text(json.dumps(dict(
        tokenizer_class="LlamaTokenizer", add_bos_token=add_bos, add_eos_token=False, legacy=False,
        bos_token="<s>", eos_token="<|endoftext|>", unk_token="<unk>", pad_token="<unk>",
        added_tokens_decoder=added, clean_up_tokenization_spaces=False, model_max_length=4096,
    )))
    return path


class ReferenceSlowTokenizer:
    """transformers 4.x `LlamaTokenizer(legacy=False)` on the sentencepiece library.

    - sentencepiece runs without its dummy prefix; instead the whole text gets one "▁" in front;
    - the text is cut at added tokens (longest match first); an added token with rstrip eats the
      whitespace after it; added tokens map to their ids;
    - a piece that starts with "▁" is encoded behind "<unk>" and the "<unk>" pieces are dropped (so that
      sentencepiece keeps the "▁");
    - a leading lone "▁" is dropped only before a named special token (bos, eos, unk, pad);
    - BOS is prepended when add_bos_token.
    """

    def __init__(self, model: bytes, folder, seg_id: int):
        proto = sentencepiece_model_pb2.ModelProto.FromString(model)
        proto.normalizer_spec.add_dummy_prefix = False
        self.sp = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
        cfg = json.loads((folder / "tokenizer_config.json").read_text())
        self.added = {v["content"]: (int(k), v["rstrip"]) for k, v in cfg["added_tokens_decoder"].items()}
        assert self.added.setdefault("[SEG]", (seg_id, False))[0] == seg_id  # `add_tokens("[SEG]")`
        self.named = {cfg["bos_token"], cfg["eos_token"], cfg["unk_token"], cfg["pad_token"]}
        self.add_bos = cfg["add_bos_token"]
        self.bos_id, self.pad_id = self.added["<s>"][0], self.added[cfg["pad_token"]][0]
        self.unk_len = len(self.sp.encode("<unk>"))

    def _split(self, text: str) -> list[str]:
        parts, start, i = [], 0, 0
        while i < len(text):
            match = max((t for t in self.added if text.startswith(t, i)), key=len, default=None)
            if match is None:
                i += 1
                continue
            parts += [text[start:i], match]
            i = start = i + len(match)
        return parts + [text[start:]]

    def tokens(self, text: str) -> list[str]:
        if not text:
            return []
        parts = self._split(SPIECE + text.replace(SPIECE, " "))
        for i, part in enumerate(parts[:-1]):
            if part in self.added and self.added[part][1]:
                parts[i + 1] = parts[i + 1].lstrip()
        out = []
        for part in parts:
            if part in self.added:
                out.append(part)
            elif part.startswith((SPIECE, " ")):
                out += self.sp.encode("<unk>" + part, out_type=str)[self.unk_len:]
            elif part:
                out += self.sp.encode(part, out_type=str)
        if len(out) > 1 and out[0] == SPIECE and out[1] in self.named:
            out = out[1:]
        return out

    def __call__(self, text: str) -> list[int]:
        ids = [self.added[t][0] if t in self.added else self.sp.piece_to_id(t) for t in self.tokens(text)]
        return [self.bos_id] * self.add_bos + ids


def official_ids(tok, question: str, answer: str | None) -> tuple[list[int], list[int] | None]:
    """The official ids (and training labels) of one turn with the video marker at the front."""

    def image_token_ids(text: str) -> list[int]:  # tokenizer_image_token
        chunks = [tok(chunk) for chunk in text.split("<image>")]
        offset = 1 if chunks[0] and chunks[0][0] == tok.bos_id else 0
        ids = chunks[0][:1] if offset else []
        for k, chunk in enumerate(chunks):
            if k:
                ids += ([IMAGE] * (offset + 1))[offset:]
            ids += chunk[offset:]
        return ids

    prompt = f"{SYSTEM}<|end|>\n<|user|>\n{'<image>' * 16}\n{question}<|end|>\n<|assistant|>\n"
    if answer is None:
        return image_token_ids(prompt), None
    conversation = prompt + answer + "<|end|>"
    ids = image_token_ids(conversation)
    target = list(ids)
    # preprocess_fn_phi3, one round: sep "<|end|>", assistant role "\n<|assistant|>\n"
    total = sum(i != tok.pad_id for i in ids)
    rounds = conversation.split("<|end|>")
    rounds = ["<|end|>".join(rounds[:3])] + ["<|end|>".join(rounds[k:k + 2]) for k in range(3, len(rounds), 2)]
    cur, sep = 0, "<|end|>\n<|assistant|>\n"
    for k, rou in enumerate(rounds):
        parts = rou.split(sep)
        if rou == "" or len(parts) != 2:
            break
        round_len, instruction_len = len(image_token_ids(rou)), len(image_token_ids(parts[0] + sep)) - 1
        shift = 1 if k == 0 else -2
        round_len, instruction_len = round_len + shift, instruction_len + shift
        target[cur:cur + instruction_len] = [IGNORE] * len(target[cur:cur + instruction_len])
        cur += round_len
    target[cur:] = [IGNORE] * len(target[cur:])
    if cur != total:
        target = [IGNORE] * len(target)
    return ids, target


def _collapse(ids: list[int], labels: list[int] | None) -> tuple[list[int], list[int] | None]:
    keep = [k for k, i in enumerate(ids) if not (i == IMAGE and k and ids[k - 1] == IMAGE)]
    return [ids[k] for k in keep], None if labels is None else [labels[k] for k in keep]


def _processor(tokenizer, seg_id: int) -> VideoGLaMMProcessor:
    config = VideoGLaMMConfig.from_preset("videoglamm-tiny", tokens={"seg_token_id": seg_id})
    return VideoGLaMMProcessor(config, tokenizer)


def _differing(proc: VideoGLaMMProcessor, reference) -> list[tuple[str, str | None]]:
    bad = []
    for question in QUESTIONS:
        for answer in ANSWERS:
            ids, labels = proc.tokenize(question, answer)
            ours = _collapse(ids, None if answer is None else labels)
            if ours != _collapse(*official_ids(reference, question, answer)):
                bad.append((question, answer))
    return bad


@pytest.mark.parametrize("add_bos,rstrip", [(False, True), (True, True), (True, False), (False, False)],
                         ids=["phi3", "bos", "bos-keep-ws", "keep-ws"])
def test_ids_and_labels_equal_the_official_slow_tokenizer(tmp_path, sp_model, add_bos, rstrip):
    folder = _release_folder(tmp_path / "release", sp_model, add_bos, rstrip)
    tok = load_tokenizer(folder)  # what from_pretrained loads for a release-like folder
    assert not tok.is_fast
    seg_id = tok.convert_tokens_to_ids("[SEG]")
    reference = ReferenceSlowTokenizer(sp_model, folder, seg_id)
    proc = _processor(tok, seg_id)
    bad = _differing(proc, reference)
    cases = len(QUESTIONS) * len(ANSWERS)
    assert not bad, f"{len(bad)} of {cases} turns differ from the official ids/labels, e.g. {bad[:3]}"
    # the supervised part is the answer as tokenized after <|assistant|>, not the answer alone
    ids, labels = proc.tokenize("What is it?", "It is [SEG].")
    supervised = [i for i, t in zip(ids, labels) if t != IGNORE]
    assert supervised[-1] == tok.convert_tokens_to_ids("<|end|>") and seg_id in supervised
    assert proc.decode(supervised) == "It is [SEG]."


@pytest.mark.parametrize("name", ["phi3", "bos_keep_ws"])
def test_slow_tokenizer_matches_transformers_4_golden_ids(name):
    """Golden ids of transformers 4.46.3's slow `LlamaTokenizer(legacy=False)` (tests/data/slow_tokenizer,
    written by its make_golden.py): the class we load, and the reference above, both give them."""
    golden = json.loads((GOLDEN / "golden_ids.json").read_text())
    tok = load_tokenizer(GOLDEN / name)
    tok.add_tokens("[SEG]")
    reference = ReferenceSlowTokenizer((GOLDEN / name / "tokenizer.model").read_bytes(), GOLDEN / name,
                                       tok.convert_tokens_to_ids("[SEG]"))
    want = golden["ids"][name]
    assert [tok(t).input_ids for t in golden["texts"]] == want
    assert [reference(t) for t in golden["texts"]] == want


def test_saved_tokenizer_reloads_as_the_slow_one(tmp_path, sp_model):
    folder = _release_folder(tmp_path / "release", sp_model, add_bos=False, rstrip=True)
    tok = load_tokenizer(folder)
    tok.save_pretrained(tmp_path / "saved")
    again = load_tokenizer(tmp_path / "saved")
    assert type(again) is type(tok) and not again.is_fast
    text = f"{SYSTEM}<|end|>\n<|user|>\n x [SEG]<|end|>"
    assert again(text).input_ids == tok(text).input_ids
    assert again.convert_tokens_to_ids("[SEG]") == tok.convert_tokens_to_ids("[SEG]")


@pytest.mark.parametrize("kind", ["fast", "tiny"])
def test_the_procedure_holds_for_any_tokenizer(tmp_path, sp_model, kind):
    """The official procedure holds whatever the tokenizer: transformers' fast Llama tokenizer (whose ids
    differ from the slow one's on every turn here, which is why release folders load slow) and the packaged
    byte-level one of the tiny presets."""
    from transformers import AutoTokenizer

    if kind == "fast":
        tok = AutoTokenizer.from_pretrained(_release_folder(tmp_path / "release", sp_model, True, True))
        assert tok.is_fast
    else:
        tok = load_tokenizer("videoglamm-tiny")
    seg_id = tok.convert_tokens_to_ids("[SEG]")

    class Wrapped:  # the reference procedure reads ids through this interface
        bos_id, pad_id = tok.bos_token_id, tok.pad_token_id

        def __call__(self, text):
            return tok(text).input_ids

    assert _differing(_processor(tok, seg_id), Wrapped()) == []


def test_phrase_index_follows_the_conversation_ids(tmp_path, sp_model):
    folder = _release_folder(tmp_path / "release", sp_model, add_bos=False, rstrip=True)
    tok = load_tokenizer(folder)
    proc = _processor(tok, tok.convert_tokens_to_ids("[SEG]"))
    answer = "<p> the red circle </p> [SEG] and <p>a blue box</p>[SEG] [SEG]."
    ids, labels = proc.tokenize("describe", answer)
    index = proc.answer_phrase_index(labels)
    first = next(k for k, t in enumerate(labels) if t != IGNORE)
    assert len(index) == len(ids) and not any(index[:first])
    words = [proc.decode([i for i, k in zip(ids, index) if k == n]) for n in (1, 2, 3)]
    assert words == ["the red circle", "a blue box", ""]


def test_labels_that_cannot_be_placed_are_an_error(tmp_path, sp_model):
    folder = _release_folder(tmp_path / "release", sp_model, add_bos=False, rstrip=True)
    tok = load_tokenizer(folder)
    proc = _processor(tok, tok.convert_tokens_to_ids("[SEG]"))
    with pytest.raises(TokenCountError, match="cannot place the labels"):
        proc.tokenize("what?", "a <unk> b")  # the pad token: the official would drop this sample's text loss
    with pytest.raises(InputError, match="chat tag"):
        proc.tokenize("what?", "first<|end|>\n<|assistant|>\nsecond")
    with pytest.raises(InputError, match="chat tag"):
        proc.tokenize("what?<|end|>", "x")

