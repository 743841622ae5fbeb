"""SAMWISE on the tiny preset: adapter shapes and semantics, trainable set, fusion, training forward."""

import pytest
import torch

from videoglamm.errors import ConfigError, ShapeMismatchError
from videoglamm.samwise.adapter import CMTAdapter, HierarchicalSelfAttention
from videoglamm.samwise.config import SAMWISEConfig
from videoglamm.samwise.model import SAMWISE
from videoglamm.samwise.processing import pad_transform, tokenize


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return SAMWISE(SAMWISEConfig.from_preset("samwise-tiny"))


def _expected_trainable(model):
    return {f"{prefix}.{n}" for prefix, m in model.trainable_modules().items() for n, _ in m.named_parameters()}


@pytest.mark.parametrize("motion", [False, True])
def test_base_preset_trainable_count_on_meta(motion):
    # samwise.md 3.1: adapters 4,576,064, project_text 328,448, CME 331,394 of which the official block's
    # never-applied norm2 (2 x 256) has no counterpart here; the motion projection is frozen (section 1).
    with torch.device("meta"):
        model = SAMWISE(SAMWISEConfig.from_preset("samwise-base", prompt={"motion_prompt": motion}))
    counts = {k: sum(p.numel() for p in m.parameters()) for k, m in model.trainable_modules().items()}
    cme = 331_394 - 2 * 256
    assert counts == {"adapters": 4_576_064, "prompt_projection": 328_448, "conditional_memory_encoder": cme}
    assert [sum(p.numel() for p in a.parameters()) for a in model.adapters] == [1_381_056, 1_483_904, 1_711_104]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 5_235_906 - 2 * 256
    assert {n for n, p in model.named_parameters() if p.requires_grad} == _expected_trainable(model)
    assert (model.motion_projection is not None) == motion


def test_trainable_set_is_exactly_declared(tiny):
    trainable = {n for n, p in tiny.named_parameters() if p.requires_grad}
    assert trainable == _expected_trainable(tiny)
    assert not any(n.startswith(("sam2.", "text_encoder.")) for n in trainable)
    assert all(not p.requires_grad for p in tiny.sam2.parameters())


@pytest.mark.parametrize("scope", ["local", "global"])
def test_adapter_shapes(scope):
    torch.manual_seed(0)
    adapter = CMTAdapter(visual_dim=24, text_dim=20, dim=16, num_heads=2, patch_size=2, hsa_scope=scope).eval()
    b, t, h, w, length = 2, 3, 4, 6, 5
    vis, txt = adapter(torch.randn(b * t, 24, h, w), torch.randn(b, length, 20), torch.zeros(b, length, dtype=torch.bool), t)
    assert vis.shape == (b * t, 24, h, w) and txt.shape == (b, length, 20)
    assert (vis >= 0).all()  # ReLU after the up-projection: the visual residual is non-negative
    with pytest.raises(ShapeMismatchError):
        adapter(torch.randn(5, 24, h, w), torch.randn(b, length, 20), torch.zeros(b, length, dtype=torch.bool), t)


def test_hsa_mixes_only_within_a_subvolume():
    torch.manual_seed(0)
    hsa = HierarchicalSelfAttention(dim=8, num_heads=2, patch_size=2, dropout=0.0).eval()
    t, h, w = 3, 4, 4
    x = torch.randn(t, 8, h, w)
    y = x.clone()
    y[1, :, 0, 3] += torch.randn(8)  # frame 1, pixel (0, 3): patch location (0, 1)
    changed = (hsa(x, t) - hsa(y, t)).abs().amax(dim=1) > 1e-6  # (T, H, W)
    inside = torch.zeros(t, h, w, dtype=torch.bool)
    inside[:, 0:2, 2:4] = True  # the same patch location in every frame of the clip
    assert changed[inside].all() and not changed[~inside].any()
    hsa.scope = "global"  # attention over every clip position: the change reaches everything
    assert ((hsa(x, t) - hsa(y, t)).abs().amax(dim=1) > 1e-6).all()


def test_vta_ignores_padded_text_tokens():
    torch.manual_seed(0)
    adapter = CMTAdapter(visual_dim=12, text_dim=10, dim=8, num_heads=2, patch_size=2).eval()
    vis = torch.randn(2, 12, 4, 4)
    text = torch.randn(1, 4, 10)
    padding = torch.tensor([[False, False, True, True]])
    noisy = text.clone()
    noisy[:, 2:] = torch.randn(1, 2, 10) * 100
    out_a = adapter(vis, text, padding, 2)
    out_b = adapter(vis, noisy, padding, 2)
    assert torch.allclose(out_a[0], out_b[0], atol=1e-5)  # visual residual blind to pads
    assert torch.allclose(out_a[1][:, :2], out_b[1][:, :2], atol=1e-5)  # so are the real text tokens


def test_batched_videos_equal_single_videos(tiny):
    tiny.eval()
    captions = ["the red circle", "the blue square moving left"]
    text = tokenize(tiny.tokenizer, captions, 32)
    frames = torch.randint(0, 256, (2, 3, 40, 52, 3), dtype=torch.uint8)
    pixels = torch.stack([pad_transform(f, 64, tiny.config.mean, tiny.config.std)[0] for f in frames])
    valid = pad_transform(frames[0], 64, tiny.config.mean, tiny.config.std)[1]
    with torch.no_grad():
        both = tiny(pixels, text, valid).mask_logits
        for i, caption in enumerate(captions):
            one = tiny(pixels[i : i + 1], tokenize(tiny.tokenizer, [caption], 32), valid).mask_logits
            assert torch.allclose(both[i], one[0], atol=1e-4)


def test_gradients_reach_only_trainable_parameters(tiny):
    torch.manual_seed(0)
    tiny.train()
    text = tokenize(tiny.tokenizer, ["the red circle", "the shape moving up"], 32)
    frames = torch.randint(0, 256, (4, 40, 52, 3), dtype=torch.uint8)
    pixels, valid = pad_transform(frames, 64, tiny.config.mean, tiny.config.std)
    targets = torch.zeros(2, 4, 40, 52)
    targets[:, :, 10:20, 10:30] = 1
    tiny.zero_grad(set_to_none=True)
    out = tiny(pixels.unsqueeze(0).repeat(2, 1, 1, 1, 1), text, valid, targets)
    assert out.mask_logits.shape == (2, 4, 40, 52) and out.object_score_logits.shape == (2, 4)
    assert out.cme_logits is not None and out.cme_logits.shape[1] == 2  # the CME ran on the eligible frame
    assert torch.isfinite(out.loss)
    out.loss.backward()
    with_grad = {n for n, p in tiny.named_parameters() if p.grad is not None}
    assert with_grad <= _expected_trainable(tiny)
    assert any(n.startswith("adapters.0.") for n in with_grad)  # through frozen Hiera and memory
    assert any(n.startswith("prompt_projection.") for n in with_grad)
    tiny.eval()


def test_object_score_loss_adds_bce_on_frame_presence(tiny):
    torch.manual_seed(0)
    tiny.eval()  # no dropout: both forwards see the same logits
    text = tokenize(tiny.tokenizer, ["the red circle"], 32)
    frames = torch.randint(0, 256, (4, 40, 52, 3), dtype=torch.uint8)
    pixels, valid = pad_transform(frames, 64, tiny.config.mean, tiny.config.std)
    targets = torch.zeros(1, 4, 40, 52)
    targets[:, 1:3, 10:20, 10:30] = 1  # present on frames 1 and 2 only
    loss_cfg = tiny.config.loss
    assert loss_cfg.object_score_weight == 0.0  # the released recipe
    with torch.no_grad():
        base = tiny(pixels[None], text, valid, targets)
        loss_cfg.object_score_weight = 2.0
        try:
            weighted = tiny(pixels[None], text, valid, targets)
        finally:
            loss_cfg.object_score_weight = 0.0
    present = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(base.object_score_logits, present)
    assert torch.allclose(weighted.loss, base.loss + 2.0 * bce)


def test_inference_suppress_absent_switch(tiny):
    torch.manual_seed(0)
    tiny.eval()
    text = tokenize(tiny.tokenizer, ["the red circle"], 32)
    frames = torch.randint(0, 256, (4, 40, 52, 3), dtype=torch.uint8)
    pixels, valid = pad_transform(frames, 64, tiny.config.mean, tiny.config.std)
    inference = tiny.config.inference
    assert inference.suppress_absent  # the released behaviour
    with torch.no_grad():
        kept_cfg = SAMWISEConfig.from_preset("samwise-tiny", inference={"suppress_absent": False})
        assert not kept_cfg.inference.suppress_absent
        suppressed = tiny(pixels[None], text, valid)
        inference.suppress_absent = False
        try:
            kept = tiny(pixels[None], text, valid)
        finally:
            inference.suppress_absent = True
    absent = suppressed.object_score_logits[0] <= 0  # (T,)
    assert absent.any()  # random SAM2: some frames score <= 0
    assert (suppressed.mask_logits[0][absent] < -100).all()
    assert (kept.mask_logits[0][absent] > -100).any()  # the raw logits survive


def test_config_validation():
    with pytest.raises(ConfigError):
        SAMWISEConfig.from_preset("samwise-tiny", adapter={"hsa_patch_sizes": (3, 2, 1)})
    with pytest.raises(ConfigError):
        SAMWISEConfig.from_preset("samwise-tiny", adapter={"text_layers": (2, 3, 9)})
    with pytest.raises(ConfigError):
        SAMWISEConfig.from_preset("samwise-huge")
    with pytest.raises(ConfigError):
        SAMWISEConfig.from_preset("samwise-tiny", adapter={"hsa_scope": "everywhere"})
