import pytest
import torch

from conftest import random_video
from videoglamm.config import VideoGLaMMConfig
from videoglamm.errors import TokenCountError
from videoglamm.modeling.videoglamm import VideoGLaMM


@pytest.fixture(scope="module")
def model(tiny_config):
    torch.manual_seed(0)
    return VideoGLaMM(tiny_config)


def _batch(processor, seg_counts=(1, 2), t=6):
    videos = [random_video(t=t, seed=i) for i in range(len(seg_counts))]
    answers = [" ".join(f"<p> thing {k} </p> [SEG]" for k in range(n)) + "." for n in seg_counts]
    masks = []
    for i, n in enumerate(seg_counts):
        m = torch.zeros(n, t, 40, 52, dtype=torch.bool)
        for k in range(n):
            m[k, :, 5 * k : 5 * k + 20, 10:30] = True
        masks.append(m)
    return processor(videos=videos, prompts=["describe"] * len(seg_counts), answers=answers, masks=masks)


EXPECTED_TRAINABLE_PREFIXES = ("image_adapter.", "video_adapter.", "seg_projector.")
EXPECTED_TRAINABLE_EXACT = ("llm.model.embed_tokens.weight", "llm.lm_head.weight")


def test_trainable_set_is_exactly_declared(model):
    names = set(model.trainable_parameter_names())
    expected = {n for n, _ in model.named_parameters() if n.startswith(EXPECTED_TRAINABLE_PREFIXES)}
    expected |= set(EXPECTED_TRAINABLE_EXACT)
    assert names == expected


def test_mask_decoder_trainable_when_configured():
    cfg = VideoGLaMMConfig.from_preset("videoglamm-tiny", sam2={"train_mask_decoder": True})
    m = VideoGLaMM(cfg)
    names = set(m.trainable_parameter_names())
    decoder = {n for n, _ in m.named_parameters() if ".sam_mask_decoder." in n}
    assert decoder and decoder <= names
    assert not any(".image_encoder." in n or ".memory_attention." in n for n in names)


def test_shapes_at_every_stage(model, tiny_processor, tiny_config):
    cfg = tiny_config
    batch = _batch(tiny_processor)
    visual = model.encode_video(batch["pixel_values_image"], batch["pixel_values_video"])
    assert visual.shape == (2, cfg.num_visual_tokens, cfg.llm.hidden_size)
    embeds = model.embed_inputs(batch["input_ids"], visual)
    assert embeds.shape == (*batch["input_ids"].shape, cfg.llm.hidden_size)
    out = model(**batch)
    assert out.logits.shape == (*batch["input_ids"].shape, cfg.llm.vocab_size)
    assert [p.shape for p in out.pred_masks] == [(1, cfg.sampling.sam_frames, 40, 52), (2, cfg.sampling.sam_frames, 40, 52)]
    assert [e.shape for e in out.seg_embeddings] == [(1, cfg.seg_projector.out_dim), (2, cfg.seg_projector.out_dim)]
    for value in (out.loss, out.lm_loss, out.mask_bce_loss, out.mask_dice_loss):
        assert value.ndim == 0 and torch.isfinite(value)
    w = cfg.loss
    torch.testing.assert_close(out.loss, w.ce_weight * out.lm_loss + w.bce_weight * out.mask_bce_loss
                               + w.dice_weight * out.mask_dice_loss)


def test_visual_token_order_is_clip_then_internvideo(model, tiny_processor, tiny_config):
    batch = _batch(tiny_processor, seg_counts=(1,))
    visual = model.encode_video(batch["pixel_values_image"], batch["pixel_values_video"])
    n_img = tiny_config.sampling.encoder_frames * tiny_config.image_tokens_per_frame
    with torch.no_grad():
        img = model.image_adapter(model.image_tower(batch["pixel_values_image"][0]))
    torch.testing.assert_close(visual[0, :n_img], img.flatten(0, 1))


def test_placeholder_and_seg_mismatches_raise(model, tiny_processor, tiny_config):
    batch = _batch(tiny_processor)
    ids = batch["input_ids"].clone()
    ids[0, (ids[0] == tiny_config.tokens.video_token_id).nonzero()[0, 0]] = 5
    with pytest.raises(TokenCountError, match="placeholder count"):
        model(**{**batch, "input_ids": ids})
    masks = [batch["masks"][0], batch["masks"][1][:1]]
    with pytest.raises(TokenCountError, match="2 \\[SEG\\] tokens but 1 masks"):
        model(**{**batch, "masks": masks})


def test_padding_masks_are_not_counted(model, tiny_processor):
    """A sample without [SEG] adds nothing to the mask losses (no padded masks in the normaliser)."""
    torch.manual_seed(0)
    alone = _batch(tiny_processor, seg_counts=(2,))
    with_empty = _batch(tiny_processor, seg_counts=(2, 0))
    a = model(**alone)
    b = model(**with_empty)
    torch.testing.assert_close(a.mask_bce_loss, b.mask_bce_loss)
    torch.testing.assert_close(a.mask_dice_loss, b.mask_dice_loss)


def test_one_step_changes_only_trainable(tiny_config, tiny_processor):
    torch.manual_seed(0)
    m = VideoGLaMM(tiny_config)
    m.apply_lora()
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    out = m(**_batch(tiny_processor))
    out.loss.backward()
    grads = {n for n, p in m.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    trainable = set(m.trainable_parameter_names())
    assert grads <= trainable
    assert any("lora_" in n for n in grads) and "seg_projector.fc1.weight" in grads
    assert any(n.startswith("video_adapter.") for n in grads) and any(n.startswith("image_adapter.") for n in grads)
    opt.step()
    for n, p in m.named_parameters():
        changed = not torch.equal(before[n], p.detach())
        if n in grads:
            assert changed, n
        elif n not in trainable:
            assert not changed, n


def test_loss_decreases_on_repeated_batch(tiny_config, tiny_processor):
    torch.manual_seed(0)
    m = VideoGLaMM(tiny_config)
    m.apply_lora()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=3e-3)
    batch = _batch(tiny_processor)
    losses = []
    for _ in range(6):
        out = m(**batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_lora_merge_keeps_outputs_and_preset_keys(tiny_config, tiny_processor):
    torch.manual_seed(0)
    m = VideoGLaMM(tiny_config).eval()
    keys = set(m.state_dict())
    m.apply_lora()
    with torch.no_grad():  # make the adapter non-zero so merging matters
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    batch = _batch(tiny_processor)
    with torch.no_grad():
        before = m(**batch).logits
    m.merge_lora()
    with torch.no_grad():
        after = m(**batch).logits
    torch.testing.assert_close(before, after, atol=1e-4, rtol=1e-4)
    assert set(m.state_dict()) == keys


def test_full_preset_on_meta_device_has_official_sizes():
    cfg = VideoGLaMMConfig.from_preset("videoglamm-phi3-mini")
    with torch.device("meta"):
        m = VideoGLaMM(cfg)
    count = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    assert count(m.image_tower) == pytest.approx(303.5e6, rel=0.01)
    assert count(m.llm) == pytest.approx(3.82e9, rel=0.01)
    assert count(m.mask_decoder) == pytest.approx(224.43e6, rel=0.001)
    assert count(m.video_tower) == pytest.approx(1.0e9, rel=0.05)
    assert count(m.image_adapter) == 1024 * 3072 + 3072 + 3072 * 3072 + 3072
    assert count(m.video_adapter) == 1408 * 3072 + 3072 + 3072 * 3072 + 3072
    assert count(m.seg_projector) == 3072 * 3072 + 3072 + 3072 * 256 + 256
    assert m.language_model.get_input_embeddings().weight.shape == (32012, 3072)


def test_train_all_sam2_makes_every_sam2_tensor_trainable_and_reach_grads(tiny_processor):
    cfg = VideoGLaMMConfig.from_preset("videoglamm-tiny", sam2={"train_all": True})
    m = VideoGLaMM(cfg)
    names = set(m.trainable_parameter_names())
    assert {n for n, _ in m.mask_decoder.named_parameters(prefix="mask_decoder")} <= names
    out = m(**_batch(tiny_processor))
    out.loss.backward()
    encoder_grads = [p.grad for n, p in m.mask_decoder.model.image_encoder.named_parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in encoder_grads)


@pytest.mark.parametrize("fallback", [True, False])
def test_multimask_fallback_switch(fallback):
    # Single-mask training never updates SAM2's multimask tokens; a from-scratch SAM2 (the tiny preset)
    # turns the eval-mode fallback to them off, so eval-mode masks equal train-mode masks.
    from videoglamm.modeling.mask_decoder import build_mask_decoder

    cfg = VideoGLaMMConfig.from_preset("videoglamm-tiny", sam2={"multimask_fallback": fallback}).sam2
    assert VideoGLaMMConfig.from_preset("videoglamm-tiny").sam2.multimask_fallback is False
    assert VideoGLaMMConfig.from_preset("videoglamm-phi3-mini").sam2.multimask_fallback is True
    torch.manual_seed(0)
    decoder = build_mask_decoder(cfg)
    assert decoder.model.sam_mask_decoder.dynamic_multimask_via_stability is fallback
    s = decoder.image_size
    with torch.no_grad():
        features = decoder.encode_frames(torch.randn(2, 3, s, s))
        prompts = torch.randn(2, 3, decoder.hidden_dim)
        eval_logits = decoder.eval().decode(features, prompts).mask_logits
        train_logits = decoder.train().decode(features, prompts).mask_logits
    assert torch.equal(eval_logits, train_logits) is not fallback
