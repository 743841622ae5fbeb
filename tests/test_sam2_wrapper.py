"""The SAM2 wrapper on the tiny preset (random weights), and the full Hiera-L build on the meta device."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from videoglamm.config import SAM2Config, VideoGLaMMConfig
from videoglamm.errors import InputError, ShapeMismatchError
from videoglamm.modeling.mask_decoder import SAM2MaskDecoder, build_mask_decoder, build_sam2_model
from videoglamm.modeling.sam2_tracking import SAM2VideoTracker

LISTING = Path(__file__).parent / "data" / "checkpoint_keys" / "sam2_hiera_large.tsv"


def tiny_cfg(**changes: object) -> SAM2Config:
    return VideoGLaMMConfig.from_preset("videoglamm-tiny", sam2=dict(changes)).sam2


def present_objects(dec: SAM2MaskDecoder) -> SAM2MaskDecoder:
    """Bias the random object-score head towards "present".

    With random weights SAM2 predicts every object absent and then replaces all mask logits by -1024,
    which would make every mask comparison below vacuous.
    """
    with torch.no_grad():
        dec.model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return dec


@pytest.fixture(scope="module")
def decoder() -> SAM2MaskDecoder:
    torch.manual_seed(0)
    return present_objects(build_mask_decoder(tiny_cfg()))


def frames(n: int, size: int, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, size, size, generator=g) for _ in range(n)]


def prompts(k: int, d: int, seed: int = 2) -> torch.Tensor:
    return torch.randn(k, d, generator=torch.Generator().manual_seed(seed))


def track_all(decoder: SAM2MaskDecoder, video, p, **kw) -> list:
    with torch.no_grad():
        return list(decoder.track(video, p, **kw))


# -- build and trainable set -------------------------------------------------------------------


def test_tiny_build_is_frozen_by_default(decoder: SAM2MaskDecoder) -> None:
    assert decoder.image_size == 64 and decoder.hidden_dim == 32 and decoder.low_res_size == 16
    assert not decoder.training and not decoder.model.training
    assert [n for n, p in decoder.named_parameters() if p.requires_grad] == []


def test_train_mask_decoder_makes_exactly_the_mask_decoder_trainable() -> None:
    dec = build_mask_decoder(tiny_cfg(train_mask_decoder=True))
    trainable = {n for n, p in dec.named_parameters() if p.requires_grad}
    expected = {f"model.sam_mask_decoder.{n}" for n, _ in dec.model.sam_mask_decoder.named_parameters()}
    assert trainable == expected and expected


def test_full_hiera_large_on_meta_matches_the_checkpoint_listing() -> None:
    rows = [line.split("\t") for line in LISTING.read_text().splitlines()]
    listing = {name: json.loads(shape) for name, shape, _ in rows}
    with torch.device("meta"):
        dec = build_mask_decoder(SAM2Config())
    state = dec.state_dict()
    assert list(state) == [f"model.{name}" for name, _, _ in rows]  # same keys, same order
    assert {k.removeprefix("model."): list(v.shape) for k, v in state.items()} == listing
    assert all(v.is_meta for v in state.values())
    total = sum(math.prod(shape) for shape in listing.values())
    assert sum(v.numel() for v in state.values()) == total == 224_430_386
    buffers = sum(b.numel() for b in dec.buffers())  # the prompt encoder's Gaussian matrix, stored in the file
    assert sum(p.numel() for p in dec.parameters()) == total - buffers
    assert [n for n, p in dec.named_parameters() if p.requires_grad] == []


def test_meta_build_can_be_materialised_and_loaded(decoder: SAM2MaskDecoder) -> None:
    with torch.device("meta"):
        fresh = build_mask_decoder(tiny_cfg())
    fresh.to_empty(device="cpu")
    fresh.load_state_dict(decoder.state_dict(), strict=True)
    fresh.eval()
    video, p = frames(4, 64), prompts(2, 32)
    for a, b in zip(track_all(fresh, video, p), track_all(decoder, video, p)):
        assert_close(a.mask_logits, b.mask_logits)


def test_build_leaves_another_hydra_application_untouched(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    (tmp_path / "app.yaml").write_text("answer: 42\n")
    before = get_gh_backup()  # sam2's own import-time state, put back for the other tests
    GlobalHydra.instance().clear()  # leave the state to the application below
    try:
        with initialize_config_dir(config_dir=str(tmp_path), version_base="1.2"):
            build_sam2_model(tiny_cfg())
            assert compose(config_name="app").answer == 42
        GlobalHydra.instance().clear()
        build_sam2_model(tiny_cfg())  # and with no Hydra state at all
        assert not GlobalHydra.instance().is_initialized()
    finally:
        restore_gh_from_backup(before)


# -- image path and frame-wise decoding ----------------------------------------------------------


def test_encode_frames_shapes_and_no_mem_embed(decoder: SAM2MaskDecoder) -> None:
    x = torch.stack(frames(3, 64))
    feats = decoder.encode_frames(x)
    assert feats.image_embed.shape == (3, 32, 4, 4)
    assert [tuple(h.shape) for h in feats.high_res] == [(3, 4, 16, 16), (3, 8, 8, 8)]
    assert feats.feat_sizes == [(16, 16), (8, 8), (4, 4)]
    lowest = feats.vision_feats[-1].permute(1, 2, 0).reshape(3, 32, 4, 4)
    assert_close(feats.image_embed - lowest, decoder.model.no_mem_embed.view(1, 32, 1, 1).expand(3, -1, 4, 4))
    with pytest.raises(ShapeMismatchError, match=r"\(N, 3, 64, 64\)"):
        decoder.encode_frames(torch.zeros(1, 3, 32, 32))


def test_decode_matches_the_official_per_frame_call(decoder: SAM2MaskDecoder) -> None:
    model = decoder.model
    x = torch.stack(frames(2, 64))
    p = torch.randn(2, 3, 32)
    with torch.no_grad():
        out = decoder.decode(decoder.encode_frames(x), p)
        assert out.mask_logits.shape == (2, 3, 16, 16)
        assert out.iou_predictions.shape == out.object_score_logits.shape == (2, 3)
        # What the official get_visual_embs_sam2 + model_forward do, one frame at a time.
        _, vision_feats, _, sizes = model._prepare_backbone_features(model.forward_image(x))
        vision_feats[-1] = vision_feats[-1] + model.no_mem_embed
        maps = [f.permute(1, 2, 0).reshape(2, -1, *s) for f, s in zip(vision_feats, sizes)]
        for i in range(2):
            masks, ious, _, scores = model.sam_mask_decoder(
                image_embeddings=maps[-1][i : i + 1],
                image_pe=model.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=p[i].unsqueeze(1),
                dense_prompt_embeddings=model.sam_prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                    3, -1, 4, 4
                ),
                multimask_output=False,
                repeat_image=True,
                high_res_features=[m[i : i + 1] for m in maps[:-1]],
            )
            assert_close(out.mask_logits[i], masks[:, 0])
            assert_close(out.iou_predictions[i], ious[:, 0])
            assert_close(out.object_score_logits[i], scores[:, 0])


def test_decode_is_per_object_and_order_equivariant(decoder: SAM2MaskDecoder) -> None:
    feats = decoder.encode_frames(torch.stack(frames(2, 64)))
    p = torch.randn(2, 4, 32)
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        base = decoder.decode(feats, p)
        permuted = decoder.decode(feats, p[:, perm])
        changed = p.clone()
        changed[:, 1] = torch.randn(2, 32)
        other = decoder.decode(feats, changed)
    assert_close(permuted.mask_logits, base.mask_logits[:, perm])
    assert_close(permuted.object_score_logits, base.object_score_logits[:, perm])
    keep = [0, 2, 3]
    assert_close(other.mask_logits[:, keep], base.mask_logits[:, keep])
    assert not torch.allclose(other.mask_logits[:, 1], base.mask_logits[:, 1])
    with pytest.raises(ShapeMismatchError, match="prompts must be"):
        decoder.decode(feats, torch.zeros(2, 4, 16))


def test_decode_gradients_reach_prompts_only_when_frozen(decoder: SAM2MaskDecoder) -> None:
    p = torch.randn(2, 2, 32, requires_grad=True)
    out = decoder.decode(decoder.encode_frames(torch.stack(frames(2, 64))), p)
    (out.mask_logits.sum() + out.iou_predictions.sum() + out.object_score_logits.sum()).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(q.grad is None for q in decoder.parameters())


def test_decode_gradients_reach_a_trainable_mask_decoder() -> None:
    dec = present_objects(build_mask_decoder(tiny_cfg(train_mask_decoder=True))).train()
    p = torch.randn(2, 2, 32, requires_grad=True)
    out = dec.decode(dec.encode_frames(torch.stack(frames(2, 64))), p)
    (out.mask_logits.sum() + out.iou_predictions.sum() + out.object_score_logits.sum()).backward()
    with_grad = {n for n, q in dec.named_parameters() if q.grad is not None}
    assert with_grad == {n for n, q in dec.named_parameters() if q.requires_grad}
    assert p.grad is not None


def test_upsample_resizes_logits_to_the_frame_size(decoder: SAM2MaskDecoder) -> None:
    logits = torch.randn(2, 3, 16, 16)
    up = decoder.upsample(logits, (48, 80))
    assert up.shape == (2, 3, 48, 80)
    expected = torch.nn.functional.interpolate(logits, size=(48, 80), mode="bilinear", align_corners=False)
    assert_close(up, expected)


# -- tracking -----------------------------------------------------------------------------------


def test_track_gives_one_track_per_object_on_every_frame(decoder: SAM2MaskDecoder) -> None:
    steps = track_all(decoder, frames(12, 64), prompts(2, 32))
    assert [s.frame_index for s in steps] == list(range(12))
    assert [s.is_prompt_frame for s in steps] == [True] + [False] * 11
    for s in steps:
        assert s.mask_logits.shape == (2, 1, 16, 16)
        assert s.object_score_logits.shape == s.iou_predictions.shape == (2, 1)
        assert (s.object_score_logits > 0).all() and s.mask_logits.min() > -1024  # real, unsuppressed masks


def test_track_streams_lists_and_generators_alike(decoder: SAM2MaskDecoder) -> None:
    video, p = frames(12, 64), prompts(2, 32)
    consumed: list[int] = []

    def lazily():
        for i, frame in enumerate(video):
            consumed.append(i)
            yield frame

    from_list = track_all(decoder, video, p)
    stream = decoder.track(lazily(), p)
    with torch.no_grad():
        first = next(stream)
        assert consumed == [0]  # frames are pulled one at a time
        from_gen = [first, *stream]
    for a, b in zip(from_list, from_gen, strict=True):
        assert torch.equal(a.mask_logits, b.mask_logits)
        assert torch.equal(a.object_score_logits, b.object_score_logits)


def test_track_memory_stays_bounded_and_trimming_changes_nothing(decoder: SAM2MaskDecoder) -> None:
    model = decoder.model
    # What SAM2 can attend to from frame t: the prompt frame, spatial memories of t-1 ... t-(num_maskmem-1),
    # object pointers of t-1 ... t-(max_obj_ptrs_in_encoder-1).
    spatial_window = model.num_maskmem - 1
    pointer_window = model.max_obj_ptrs_in_encoder - 1
    bound = 1 + max(spatial_window, pointer_window)
    assert (spatial_window, pointer_window) == (6, 15)

    video, p = frames(40, 64), prompts(2, 32)
    bounded = SAM2VideoTracker(decoder)
    unbounded = SAM2VideoTracker(decoder, retain_all_memory=True)
    sizes, spatial = [], []
    with torch.no_grad():
        for a, b in zip(bounded.track(video, p), unbounded.track(video, p), strict=True):
            assert torch.equal(a.mask_logits, b.mask_logits)
            assert torch.equal(a.object_score_logits, b.object_score_logits)
            sizes.append(len(bounded.memory))
            spatial.append(bounded.memory.num_spatial)
    assert max(sizes) <= bound and sizes[-1] == bound
    assert max(spatial) <= 1 + spatial_window and spatial[-1] == 1 + spatial_window
    assert len(unbounded.memory) == 40


@pytest.mark.parametrize(
    "overrides",
    [("++model.max_cond_frames_in_attn=2",), ("++model.memory_temporal_stride_for_eval=3",)],
    ids=["cond-frame-cap", "memory-stride"],
)
def test_trimming_follows_the_config_windows(overrides: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    cfg = tiny_cfg()
    dec = present_objects(build_mask_decoder(tiny_cfg(overrides=cfg.overrides + overrides)))
    video, p, prompted = frames(30, 64), prompts(2, 32), (0, 2, 4, 6, 8)
    bounded = SAM2VideoTracker(dec, prompt_frames=prompted)
    unbounded = SAM2VideoTracker(dec, prompt_frames=prompted, retain_all_memory=True)
    with torch.no_grad():
        for a, b in zip(bounded.track(video, p), unbounded.track(video, p), strict=True):
            assert torch.equal(a.mask_logits, b.mask_logits)
    cond = bounded.memory.output_dict["cond_frame_outputs"]
    non_cond = bounded.memory.output_dict["non_cond_frame_outputs"]
    if dec.model.max_cond_frames_in_attn == 2:
        assert sorted(cond) == [6, 8]  # the two SAM2 attends to; older ones fell out of every window
    else:
        assert sorted(cond) == list(prompted)
        # stride 3: spatial memories reach back (num_maskmem - 1) * 3 = 18 frames
        assert sum("maskmem_features" in out for out in non_cond.values()) <= 18
    assert len(non_cond) <= max(6 * dec.model.memory_temporal_stride_for_eval, 15)


def test_prompt_tokens_are_appended_after_the_padding_point_on_prompt_frames_only(
    decoder: SAM2MaskDecoder,
) -> None:
    seen: list[torch.Tensor] = []

    def record(module, args, kwargs):
        seen.append(kwargs["sparse_prompt_embeddings"].detach().clone())

    p = prompts(2, 32)
    handle = decoder.model.sam_mask_decoder.register_forward_pre_hook(record, with_kwargs=True)
    try:
        steps = track_all(decoder, frames(5, 64), p)
    finally:
        handle.remove()
    assert [s.shape[1] for s in seen] == [3, 2, 2, 2, 2]  # padding point + prompt encoder pad (+ SEG)
    assert_close(seen[0][:, 2], p)
    assert_close(seen[0][:, :2], seen[1])  # the same two padding tokens as an unprompted frame
    assert not decoder.model.sam_prompt_encoder._forward_hooks  # the hook is gone afterwards

    other = track_all(decoder, frames(5, 64), prompts(2, 32, seed=9))
    for a, b in zip(steps, other):  # frame 0 directly, later frames through memory
        assert not torch.allclose(a.mask_logits, b.mask_logits)


def test_frames_before_the_first_prompt_frame_are_skipped(decoder: SAM2MaskDecoder) -> None:
    video, p = frames(10, 64), prompts(2, 32)
    late = track_all(decoder, video, p, prompt_frames=(3,))
    trimmed = track_all(decoder, video[3:], p)
    assert [s.frame_index for s in late] == list(range(3, 10))
    for a, b in zip(late, trimmed, strict=True):
        assert_close(a.mask_logits, b.mask_logits)


def test_several_prompt_frames_are_conditioning_frames(decoder: SAM2MaskDecoder) -> None:
    steps = track_all(decoder, frames(8, 64), prompts(2, 32), prompt_frames=(0, 4))
    assert [s.is_prompt_frame for s in steps] == [True, False, False, False, True, False, False, False]
    tracker = SAM2VideoTracker(decoder, prompt_frames=(0, 4))
    with torch.no_grad():
        list(tracker.track(frames(8, 64), prompts(2, 32)))
    assert sorted(tracker.memory.output_dict["cond_frame_outputs"]) == [0, 4]


def test_track_rejects_bad_inputs(decoder: SAM2MaskDecoder) -> None:
    with pytest.raises(InputError, match="prompt frame 7"):
        track_all(decoder, frames(4, 64), prompts(2, 32), prompt_frames=(0, 7))
    with pytest.raises(ShapeMismatchError, match=r"\(K, D=32\)"):
        decoder.track(frames(2, 64), torch.zeros(2, 16))
    with pytest.raises(ShapeMismatchError, match=r"frame 0 must be \(3, 64, 64\)"):
        track_all(decoder, [torch.zeros(3, 32, 32)], prompts(1, 32))
    with pytest.raises(InputError, match="distinct non-negative"):
        decoder.track(frames(2, 64), prompts(1, 32), prompt_frames=())
    with pytest.raises(InputError, match="needs `prompts`"):
        decoder.track(frames(2, 64), None)


def test_per_frame_prompts_samwise_style_train_through_memory(decoder: SAM2MaskDecoder) -> None:
    per_frame = torch.randn(6, 2, 32, requires_grad=True)
    seen: list[int] = []
    handle = decoder.model.sam_mask_decoder.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["sparse_prompt_embeddings"].shape[1]), with_kwargs=True
    )
    try:
        steps = list(
            decoder.track(
                frames(6, 64),
                None,
                prompts_per_frame=lambda t: per_frame[t],
                multimask_on_prompt_frames=False,
                multimask_on_tracked_frames=False,
            )
        )
    finally:
        handle.remove()
    assert seen == [3] * 6  # every frame carries its own token
    assert [s.mask_logits.shape for s in steps] == [torch.Size([2, 1, 16, 16])] * 6
    (steps[-1].mask_logits.sum() + steps[-1].object_score_logits.sum()).backward()
    # Frame 5's mask depends on frame 0's prompt only through SAM2 memory.
    assert per_frame.grad is not None and per_frame.grad[0].abs().sum() > 0


def test_spatial_memories_are_stored_in_bfloat16_as_the_video_predictor_does(decoder: SAM2MaskDecoder) -> None:
    # SAM2VideoPredictor._run_single_frame_inference keeps `maskmem_features.to(torch.bfloat16)`; SAM2 then
    # reads float32(bfloat16(x)). Compare the stored bank with the exact one, frame by frame.
    video, p = frames(10, 64), prompts(2, 32)
    exact = SAM2VideoTracker(decoder, memory_dtype=None, retain_all_memory=True)
    official = SAM2VideoTracker(decoder, retain_all_memory=True)
    worst = 0.0
    with torch.no_grad():
        for a, b in zip(exact.track(video, p), official.track(video, p), strict=True):
            worst = max(worst, float((a.mask_logits - b.mask_logits).abs().max() / a.mask_logits.abs().max()))
    assert 0 < worst < 5e-2  # the rounding reaches the tracked masks, a little
    for store in ("cond_frame_outputs", "non_cond_frame_outputs"):
        for t, entry in official.memory.output_dict[store].items():
            stored = entry.stored("maskmem_features")
            assert stored.dtype == torch.bfloat16
            read = entry["maskmem_features"]
            assert read.dtype == torch.float32
            raw_official_first = exact.memory.output_dict[store][t]["maskmem_features"]
            if t == 0:  # the prompt frame's memory comes from identical inputs: exactly the rounded value
                assert torch.equal(read, raw_official_first.to(torch.bfloat16).float())
            assert stored.element_size() * 2 == raw_official_first.element_size()
