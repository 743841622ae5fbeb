"""SAMWISE against the official pipeline (reference/samwise.md, official repo @dad43ab), rule by rule.

Each oracle is independent of our code: torchvision's own `Resize(1020, max_size=1024)` on a PIL image
(what the official `VideoEvalDataset` applies), the tokenizer called directly, a CME block written here
from the official layer description, the pseudo-label rule of samwise.md section 2.7 and the trainable
filter of section 1.
"""

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image
from torch import nn

import videoglamm.samwise.model as samwise_model
import videoglamm.samwise.streaming as streaming
from videoglamm.config import IMAGENET_MEAN, IMAGENET_STD
from videoglamm.convert.samwise import DROP, convert_samwise, to_official_samwise
from videoglamm.errors import ConfigError, InputError
from videoglamm.samwise.config import SAMWISEConfig
from videoglamm.samwise.decoding import HeadOutput
from videoglamm.samwise.model import SAMWISE
from videoglamm.samwise.processing import max_text_tokens, pad_transform, postprocess_logits, tokenize_captions
from videoglamm.samwise.streaming import ClipTracker


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return SAMWISE(SAMWISEConfig.from_preset("samwise-tiny")).eval()


# -- frames: Resize(1020, max_size=1024) then zero padding to 1024 x 1024 ------------------------------------
# Square and near-square frames are where "longer side to 1024" and torchvision's rule part (1020 x 1020,
# 1020 x 1021); 333 x 517 is where int() and round() part (659 vs 660).
FRAME_SIZES = [(720, 1280), (1280, 720), (1024, 1024), (500, 500), (600, 601), (333, 517), (1000, 1010)]


@pytest.mark.parametrize("size", FRAME_SIZES)
def test_frames_resize_like_torchvision_resize_1020_max_1024(size):
    config = SAMWISEConfig.from_preset("samwise-base")
    assert config.inference.resize_short_side == 1020 and config.sam2.image_size == 1024
    frame = np.random.default_rng(0).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    oracle = T.Compose([T.Resize(1020, max_size=1024), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    expected = oracle(Image.fromarray(frame))  # (3, h', w')
    pixels, valid = pad_transform(torch.from_numpy(frame)[None], 1024, IMAGENET_MEAN, IMAGENET_STD,
                                  short_side=config.inference.resize_short_side)
    h, w = expected.shape[1:]
    assert tuple(valid) == (h, w) and pixels.shape == (1, 3, 1024, 1024)
    assert torch.allclose(pixels[0, :, :h, :w], expected, atol=1e-6)  # the same PIL bilinear resize
    assert not pixels[0, :, h:].any() and not pixels[0, :, :, w:].any()  # zero padding bottom / right


def test_longer_side_rule_stays_as_an_option():
    # short_side=None: the longer side goes to S (the training-time RandomResize([1024], max_size=1024) shape).
    frame = torch.zeros(1, 500, 500, 3, dtype=torch.uint8)
    assert pad_transform(frame, 1024, IMAGENET_MEAN, IMAGENET_STD)[1] == (1024, 1024)
    assert SAMWISEConfig.from_preset("samwise-base", inference={"resize_short_side": None}).inference.resize_short_side is None
    with pytest.raises(ConfigError):
        SAMWISEConfig.from_preset("samwise-tiny", inference={"resize_short_side": 64})  # must be < image_size


def test_streaming_uses_the_configured_rule_at_the_tiny_size(tiny, monkeypatch):
    short = tiny.config.inference.resize_short_side
    assert short == 63  # 1020 / 1024 of the tiny 64 px input, rounded down
    seen = []
    real = streaming.pad_transform

    def record(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out[1])
        return out

    monkeypatch.setattr(streaming, "pad_transform", record)
    video = np.random.default_rng(1).integers(0, 256, size=(2, 40, 40, 3), dtype=np.uint8)
    tiny.predict(video, ["the red circle"])
    expected = T.Resize(short, max_size=64)(Image.fromarray(video[0])).size[::-1]
    assert seen == [expected] == [(63, 63)]


def test_masks_are_cropped_to_the_resized_region_before_resizing_back():
    # Official: low-res logits -> bilinear to S x S -> crop the padding -> bilinear to the frame size.
    low = torch.full((1, 16, 16), -20.0)
    low[:, 12:, :] = 20.0  # foreground only in the padded rows (valid height 48 of 64 -> 12 of 16)
    out = postprocess_logits(low, 64, (48, 64), (30, 40))
    assert out.shape == (1, 30, 40) and bool((out < 0).all())
    expected = torch.nn.functional.interpolate(low[None], size=(64, 64), mode="bilinear", align_corners=False)
    expected = torch.nn.functional.interpolate(expected[..., :48, :64], size=(30, 40), mode="bilinear", align_corners=False)
    assert torch.allclose(out, expected[0])


# -- captions: case kept at inference, lower-cased in training; no silent truncation ------------------------------
def test_inference_keeps_the_prompt_case_training_lower_cases(tiny):
    caption = "The RED Circle  moving left"
    raw = tiny.tokenizer([caption], return_tensors="pt")["input_ids"]
    assert torch.equal(ClipTracker(tiny, [caption]).text.input_ids, raw)  # the prompt as given
    lowered = tiny.tokenizer(["the red circle moving left"], return_tensors="pt")["input_ids"]
    assert torch.equal(tokenize_captions(tiny.tokenizer, tiny.config, [caption], training=True).input_ids, lowered)
    option = SAMWISEConfig.from_preset("samwise-tiny", inference={"normalise_prompts": True})
    assert torch.equal(tokenize_captions(tiny.tokenizer, option, [caption], training=False).input_ids, lowered)


def test_no_truncation_and_a_typed_error_past_the_position_table(tiny):
    from transformers import RobertaModel

    config = tiny.config
    assert config.text.max_length is None and SAMWISEConfig.from_preset("samwise-base").text.max_length is None
    limit = max_text_tokens(config.text)
    # The oracle for the limit: RoBERTa itself (positions start at pad_token_id + 1) takes `limit` tokens, not one more.
    roberta = RobertaModel(config.text.to_roberta(), add_pooling_layer=False).eval()
    with torch.no_grad():
        roberta(input_ids=torch.full((1, limit), 5))
        with pytest.raises((IndexError, RuntimeError)):  # no position embedding left
            roberta(input_ids=torch.full((1, limit + 1), 5))
    long = " ".join(["the red circle moving left"] * 8)
    n = tiny.tokenizer([long], return_tensors="pt")["input_ids"].shape[1]
    assert 32 < n <= limit
    tracker = ClipTracker(tiny, ["a dog", long])
    assert tracker.text.input_ids.shape[1] == n  # kept whole (was cut to 32 / 64 tokens)
    tracker.step(torch.zeros(1, 24, 24, 3, dtype=torch.uint8))
    with pytest.raises(InputError, match=f"at most {limit}"):
        ClipTracker(tiny, [" ".join(["the red circle moving left"] * 13)])
    cut = SAMWISEConfig.from_preset("samwise-tiny", text={"max_length": 16})  # the named option
    assert tokenize_captions(tiny.tokenizer, cut, [long], training=False).input_ids.shape[1] == 16
    with pytest.raises(ConfigError):
        SAMWISEConfig.from_preset("samwise-tiny", text={"max_length": limit + 1})


def test_base_text_limit_is_robertas_512_tokens():
    assert max_text_tokens(SAMWISEConfig.from_preset("samwise-base").text) == 514 - 1 - 1


# -- CME block: norm1 after attention, norm3 after the FFN, norm2 unused ----------------------------------------
class OfficialSelfAttentionBlock(nn.Module):
    """The official CME block as reported (layers.py:107-121): post-norm, norm2 never applied."""

    def __init__(self, dim, heads, ffn_dim):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=0.1)
        self.linear1, self.linear2 = nn.Linear(dim, ffn_dim), nn.Linear(ffn_dim, dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x):  # (N, B, D), eval mode
        x = self.norm1(x + self.self_attn(x, x, x)[0])
        return self.norm3(x + self.linear2(torch.relu(self.linear1(x))))


def test_cme_block_computes_the_official_block_from_converted_weights(tiny):
    torch.manual_seed(3)
    c = tiny.config.cme
    dim = tiny.sam2.hidden_dim
    block = OfficialSelfAttentionBlock(dim, c.num_heads, c.ffn_dim).eval()
    head = nn.Linear(dim, 2)
    token = torch.randn(1, dim)
    with torch.no_grad():  # trained-looking LayerNorms, so norm2 and norm3 differ
        for p in block.parameters():
            p.add_(torch.randn_like(p) * 0.5)
        tiny.text_encoder.embeddings.token_type_embeddings.weight.zero_()
    official = to_official_samwise(tiny.state_dict())
    prefix = "conditional_memory_encoder."
    official.update({f"{prefix}transformerBlock.{k}": v.clone() for k, v in block.state_dict().items()})
    official[f"{prefix}decision_token.weight"] = token
    official.update({f"{prefix}decision_class_head.{k}": v.clone() for k, v in head.state_dict().items()})

    target = SAMWISE(SAMWISEConfig.from_preset("samwise-tiny")).eval()
    state, report = convert_samwise(official, target)
    target.load_state_dict(state, strict=True)
    norm2 = {f"{prefix}transformerBlock.norm2.weight", f"{prefix}transformerBlock.norm2.bias"}
    assert norm2 <= set(report.dropped) and all("norm2" in report.dropped[k] for k in norm2)
    memory_ptr, memoryless_ptr = torch.randn(4, dim), torch.randn(4, dim)
    with torch.no_grad():
        ours = target.conditional_memory_encoder(memory_ptr, memoryless_ptr)
        seq = torch.stack([token.expand(4, -1), memory_ptr, memoryless_ptr])  # (3, B, D)
        expected = head(block(seq)[0])
    assert torch.allclose(ours, expected, atol=1e-5)


def test_norm2_is_dropped_by_name_only():
    assert any("norm2" in pattern for pattern in DROP)
    assert not any(("norm1" in p or "norm3" in p) for p in DROP)


# -- CME pseudo-labels on the masks cropped to the resized frame ---------------------------------------------------
def _official_labels(memory, memoryless, memoryless_score, min_area, threshold):
    """samwise.md 2.7, per object: ignore if the memoryless score < 0 or both masks <= min_area pixels;
    1 if intersection / min(areas) < threshold, else 0 (0/0 = NaN is not < threshold: 0)."""
    mem, nomem = memory > 0, memoryless > 0
    a, b, inter = int(mem.sum()), int(nomem.sum()), int((mem & nomem).sum())
    if memoryless_score < 0 or (a <= min_area and b <= min_area):
        return -1
    smaller = min(a, b)
    ratio = inter / smaller if smaller else float("nan")
    return 1 if ratio < threshold else 0


def test_pseudo_label_rule_matches_the_reference_rule():
    from videoglamm.samwise.cme import switch_pseudo_labels

    g = torch.Generator().manual_seed(0)
    memory = torch.randn(64, 12, 12, generator=g) + torch.linspace(-3, 3, 64)[:, None, None]
    memoryless = torch.randn(64, 12, 12, generator=g) + torch.linspace(3, -3, 64)[:, None, None]
    memory[0], memoryless[1] = -1.0, -1.0  # an empty mask: the official 0/0 falls through to label 0
    memory[2:4], memoryless[2:4] = -1.0, -1.0
    memory[2:4, :, :6], memoryless[2:4, :, 6:] = 1.0, 1.0  # disjoint: switch
    memoryless[3, 0, 0] = 1.0  # 1 / 72 overlap, still below 0.1
    scores = torch.randn(64, generator=g)
    scores[:4] = 1.0
    ours = switch_pseudo_labels(memory, memoryless, scores, 50, 0.1)
    expected = [_official_labels(m, f, float(s), 50, 0.1) for m, f, s in zip(memory, memoryless, scores)]
    assert ours.tolist() == expected and {-1, 0, 1} <= set(expected)


def test_cme_pseudo_labels_ignore_the_padding(tiny, monkeypatch):
    real_heads, real_condition = samwise_model.decode_heads, samwise_model.condition_on_memory
    conditioned, heads = [], []

    def condition(*args):
        conditioned.append(real_condition(*args))
        return conditioned[-1]

    def forced(sam, pix, high_res, tokens, suppress_absent):
        # Deterministic masks: the memory branch (decoding the memory-conditioned features) is foreground on
        # the left of the frame, the memoryless branch on the right, and both in the padded rows, where only
        # an uncropped comparison sees an overlap.
        out = real_heads(sam, pix, high_res, tokens, suppress_absent)
        branch = "memory" if pix is conditioned[-1] else "memoryless"
        s = out.high_res.shape[-1]
        logits = torch.full_like(out.high_res, -8.0)
        logits[..., :36, slice(0, s // 2) if branch == "memory" else slice(s // 2, None)] = 8.0
        logits[..., 36:, :] = 8.0  # padding (valid height 36)
        heads.append((branch, logits))
        return HeadOutput(out.low_res, logits, torch.ones_like(out.object_scores), out.obj_ptr, out.early_ptr)

    monkeypatch.setattr(samwise_model, "condition_on_memory", condition)
    monkeypatch.setattr(samwise_model, "decode_heads", forced)
    torch.manual_seed(0)
    frames = torch.randint(0, 256, (1, 4, 36, 64, 3), dtype=torch.uint8)
    pixels, valid = pad_transform(frames[0], 64, tiny.config.mean, tiny.config.std)
    assert valid == (36, 64)
    text = tokenize_captions(tiny.tokenizer, tiny.config, ["the red circle"], training=True)
    tiny.train()
    try:
        with torch.no_grad():
            out = tiny(pixels[None], text, valid)
    finally:
        tiny.eval()
    pairs = [(heads[i][1], heads[i + 1][1]) for i in range(len(heads) - 1)
             if heads[i][0] == "memory" and heads[i + 1][0] == "memoryless"]
    assert out.cme_labels is not None and len(pairs) == out.cme_labels.numel() >= 1
    c = tiny.config.cme
    cropped = [_official_labels(m[0, 0, :36], f[0, 0, :36], 1.0, c.min_area, c.overlap_threshold) for m, f in pairs]
    padded = [_official_labels(m[0, 0], f[0, 0], 1.0, c.min_area, c.overlap_threshold) for m, f in pairs]
    assert out.cme_labels.tolist() == cropped == [1] * len(pairs)  # disjoint inside the frame: switch
    assert padded == [0] * len(pairs)  # what the padded comparison said


# -- trainable set: adapters, CME, project_text; never the motion projection -------------------------------------
def _official_trainable(names):
    """samwise.md section 1: trainable iff the official name contains adapter, conditional_memory_encoder or project_text."""
    return {n for n in names if any(s in n for s in ("adapter", "conditional_memory_encoder", "project_text"))}


def test_motion_projection_is_frozen_and_starts_as_the_prompt_projection():
    torch.manual_seed(0)
    config = SAMWISEConfig.from_preset("samwise-tiny", prompt={"motion_prompt": True})
    model = SAMWISE(config, verb_tagger=lambda s: [(s.index("moving"), len(s))] if "moving" in s else [])
    assert all(torch.equal(a, b) for a, b in zip(model.motion_projection.state_dict().values(),
                                                 model.prompt_projection.state_dict().values()))
    with torch.no_grad():
        model.text_encoder.embeddings.token_type_embeddings.weight.zero_()
    official_parameters = to_official_samwise(dict(model.named_parameters()))  # BatchNorm buffers left out
    _, report = convert_samwise(to_official_samwise(model.state_dict()), model)
    ours = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {report.sources[n][0] for n in ours} == _official_trainable(official_parameters)
    assert not any(n.startswith("motion_projection.") for n in ours)

    model.train()
    frames = torch.randint(0, 256, (4, 40, 52, 3), dtype=torch.uint8)
    pixels, valid = pad_transform(frames, 64, config.mean, config.std)
    text = tokenize_captions(model.tokenizer, config, ["the shape moving left"], training=True)
    targets = torch.zeros(1, 4, 40, 52)
    targets[..., 10:20, 10:30] = 1
    model(pixels[None], text, valid, targets).loss.backward()
    assert all(p.grad is None for p in model.motion_projection.parameters())

    option = SAMWISE(SAMWISEConfig.from_preset("samwise-tiny", prompt={"motion_prompt": True,
                                                                        "train_motion_projection": True}))
    assert "motion_projection" in option.trainable_modules()
