"""The VideoGLaMM video session: live == whole video, objects added / removed mid-video, bounded memory."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import overfit
from videoglamm import VideoGLaMM, VideoGLaMMProcessor
from videoglamm.config import VideoGLaMMConfig
from videoglamm.errors import InputError, ShapeMismatchError, VideoReadError
from videoglamm.modeling.session import LiveFramePool

ANSWER = "red [SEG] and blue [SEG]."


def _video(t=20, h=40, w=52, seed=0):
    rng = np.random.default_rng(seed)
    video = np.zeros((t, h, w, 3), dtype=np.uint8) + rng.integers(0, 60, size=(1, h, w, 3), dtype=np.uint8)
    for i in range(t):  # a square moving right and back, so frames differ
        x = 2 + (3 * i) % 30
        video[i, 10:22, x : x + 12] = 230
    return video


@pytest.fixture(scope="module")
def tiny():
    """An untrained tiny model whose SAM2 scores objects present (so masks are non-trivial)."""
    torch.manual_seed(0)
    cfg = VideoGLaMMConfig.from_preset("videoglamm-tiny")
    model = VideoGLaMM(cfg).eval()
    model.processor = VideoGLaMMProcessor.from_preset("videoglamm-tiny")
    with torch.no_grad():
        model.mask_decoder.model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return model


@pytest.fixture(scope="module")
def answering(tiny):
    """A tiny model taught to answer "describe" with two [SEG] (a few seconds of training)."""
    torch.manual_seed(0)
    model = VideoGLaMM(tiny.config)
    model.processor = tiny.processor
    overfit(model, model.processor(videos=[_video(t=7)], prompts=["describe"], answers=[ANSWER]), steps=60)
    with torch.no_grad():
        model.mask_decoder.model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return model


def _seg(model, k, seed):
    return torch.randn(k, model.mask_decoder.hidden_dim, generator=torch.Generator().manual_seed(seed))


def _run(session, **kw):
    return [(o.frame_idx, list(o.object_ids), o.masks, o.scores) for o in session.propagate(**kw)]


def _rows(outputs, obj_id):
    """(masks (T, H, W), scores (T,)) of one object over the outputs that contain it."""
    picked = [(m[ids.index(obj_id)], s[ids.index(obj_id)]) for _, ids, m, s in outputs if obj_id in ids]
    return torch.stack([m for m, _ in picked]), torch.stack([s for _, s in picked])


def test_session_masks_are_sam2_tracking_of_the_prompts(tiny):
    # The session's masks are SAM2 memory tracking of the prompt tokens, upsampled to the video size.
    video, seg = _video(), _seg(tiny, 2, 0)
    session = tiny.init_video_session(video)
    assert session.add_prompt_embeddings(seg) == [0, 1]
    outputs = _run(session)
    dec = tiny.mask_decoder
    views = tiny.processor.sam_transform(torch.from_numpy(video))
    with torch.no_grad():
        steps = list(dec.track(list(views), seg))
    assert len(outputs) == len(steps) == 20
    for (index, ids, masks, scores), step in zip(outputs, steps):
        assert index == step.frame_index and ids == [0, 1]
        assert masks.shape == (2, 40, 52) and masks.dtype == torch.bool
        assert torch.equal(masks, dec.upsample(step.mask_logits[:, 0][None], (40, 52))[0] > 0)
        assert torch.equal(scores, step.object_score_logits.reshape(2).float())
    assert any(m.any() for _, _, m, _ in outputs)


@pytest.mark.parametrize("mode", ["track", "framewise"])
def test_live_pushed_frames_equal_the_whole_video(tiny, mode):
    video, seg = _video(), _seg(tiny, 2, 1)
    whole = tiny.init_video_session(video, mask_mode=mode)
    whole.add_prompt_embeddings(seg)
    expected = _run(whole)
    live = tiny.init_video_session(None, mask_mode=mode)
    live.add_prompt_embeddings(seg)  # before any frame: prompted at frame 0
    for frame, (index, ids, masks, scores) in zip(video, expected):
        out = live.step(frame)
        assert out.frame_idx == index and out.object_ids == ids
        assert torch.equal(out.masks, masks) and torch.equal(out.scores, scores)
        assert torch.equal(out.frame, torch.from_numpy(frame))


def test_object_added_mid_video_starts_at_its_frame(tiny):
    video, a, b = _video(), _seg(tiny, 1, 2), _seg(tiny, 1, 3)
    alone = tiny.init_video_session(video)
    alone.add_prompt_embeddings(a)
    a_alone = _rows(_run(alone), 0)

    session = tiny.init_video_session(video)
    session.add_prompt_embeddings(a)
    first = _run(session, max_frame_num_to_track=5)
    assert [o[0] for o in first] == list(range(5)) and all(o[1] == [0] for o in first)
    assert session.add_prompt_embeddings(b, frame_idx=8) == [1]  # added now, prompted at frame 8
    with pytest.raises(InputError, match="already propagated"):
        session.add_prompt_embeddings(b, frame_idx=4)
    rest = _run(session)
    assert [o[0] for o in rest] == list(range(5, 20)) and all(o[1] == [0, 1] for o in rest)
    # Object 0 is untouched by the object added beside it.
    masks, scores = _rows(first + rest, 0)
    assert torch.equal(masks, a_alone[0]) and torch.equal(scores, a_alone[1])
    # Object 1: empty before frame 8, then exactly a session whose video starts at frame 8.
    masks, scores = _rows(rest, 1)
    assert not masks[:3].any() and torch.isinf(scores[:3]).all()
    fresh = tiny.init_video_session(video[8:])
    fresh.add_prompt_embeddings(b)
    b_fresh = _rows(_run(fresh), 0)
    assert torch.equal(masks[3:], b_fresh[0]) and torch.equal(scores[3:], b_fresh[1])
    assert masks[3:].any()


def test_removed_objects_stop(tiny):
    video, seg = _video(), _seg(tiny, 3, 4)
    full = tiny.init_video_session(video)
    full.add_prompt_embeddings(seg)
    other = full.add_prompt_embeddings(_seg(tiny, 1, 5))
    expected = _run(full)

    session = tiny.init_video_session(video)
    session.add_prompt_embeddings(seg)
    session.add_prompt_embeddings(_seg(tiny, 1, 5))
    _run(session, max_frame_num_to_track=6)
    entries = session.memory_entries
    session.remove_object(1)
    session.remove_object(other[0])  # a whole group: its tracker goes
    assert session.object_ids == [0, 2] and session.memory_entries < entries
    with pytest.raises(InputError, match="no object 1"):
        session.remove_object(1)
    rest = _run(session)
    assert all(ids == [0, 2] for _, ids, _, _ in rest)
    # The kept objects go on as before: their memories are the same rows of the same bank.
    for (_, _, masks, scores), (_, _, full_masks, full_scores) in zip(rest, expected[6:]):
        assert torch.equal(masks, full_masks[[0, 2]])
        torch.testing.assert_close(scores, full_scores[[0, 2]], rtol=1e-5, atol=1e-5)


def test_memory_stays_bounded_over_a_long_live_stream(tiny):
    session = tiny.init_video_session(None, max_video_frames=8)
    session.add_prompt_embeddings(_seg(tiny, 2, 6))
    entries, retained = [], []
    for i, frame in enumerate(_video(t=160)):
        session.step(frame)
        if i >= 20:
            entries.append(session.memory_entries)
            retained.append(session.retained_frames)
    spatial, pointer = session._groups[0].tracker.memory.windows()
    # The prompt frame plus the frames SAM2 can still read, whatever the length.
    assert set(entries) == {1 + max(spatial, pointer)}
    assert max(retained) <= 8 and session.pool.indices[0] == 0 and session.pool.indices[-1] >= 159 - session.pool.stride


def test_long_streams_attend_object_pointers_past_frame_16(tiny):
    # A stream of unknown length tracks as SAM2 does with the length known (forward, length >= 16).
    dec = tiny.mask_decoder
    assert dec.model.max_obj_ptrs_in_encoder == 16
    views = list(tiny.processor.sam_transform(torch.from_numpy(_video(t=24))))
    seg = _seg(tiny, 2, 7)
    with torch.no_grad():
        unknown = [s.mask_logits for s in dec.track(views, seg)]
        known = [s.mask_logits for s in dec.track(views, seg, num_frames=24)]
    assert all(torch.equal(x, y) for x, y in zip(unknown, known))


def test_live_frame_pool_spans_the_stream_in_bounded_memory():
    pool = LiveFramePool(4)
    for i in range(37):
        pool.add(i, torch.full((1, 1, 3), i, dtype=torch.uint8))
        assert len(pool) <= 4
    assert pool.stride == 16 and pool.indices == [0, 16, 32]
    assert pool.get([16])[0, 0, 0, 0] == 16
    with pytest.raises(InputError, match="no longer kept"):
        pool.get([3])


def test_frame_folder_equals_the_array(tiny, tmp_path):
    video, seg = _video(t=9), _seg(tiny, 2, 8)
    for i, frame in enumerate(video):  # names sort as frame order; .png is lossless
        Image.fromarray(frame).save(tmp_path / f"{i:05d}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    sessions = [tiny.init_video_session(v) for v in (tmp_path, video)]
    for s in sessions:
        s.add_prompt_embeddings(seg)
    (a, b) = [_run(s) for s in sessions]
    assert sessions[0].num_frames == 9
    assert all(torch.equal(x[2], y[2]) and torch.equal(x[3], y[3]) for x, y in zip(a, b))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoReadError, match="holds no"):
        tiny.init_video_session(empty)
    Image.fromarray(video[0][:20]).save(tmp_path / "99999.png")
    session = tiny.init_video_session(tmp_path)
    session.add_prompt_embeddings(seg)
    with pytest.raises(ShapeMismatchError, match="99999.png"):
        _run(session)


def test_text_prompt_on_a_live_stream_sees_the_frames_so_far(answering):
    video = _video(t=7)
    expected = answering.predict(video, "describe", max_new_tokens=20)
    live = answering.init_video_session(None, max_new_tokens=20)
    for frame in video:
        live.add_frame(frame)
    ids = live.add_text_prompt("describe")  # the frames pushed so far, prompted at the first unpropagated one
    prompt = live.prompts[0]
    assert ids == [0, 1] and prompt.text == expected.text == ANSWER and prompt.frame_idx == 0
    assert prompt.encoder_frames == expected.frame_indices == answering.processor.encoder_frame_indices(7)
    outputs = _run(live)
    for obj in ids:
        assert torch.equal(_rows(outputs, obj)[0], expected.masks[obj])
    assert live.prompt_to_obj_ids == {"describe": [0, 1]} and live.prompt_of(1).phrase_of(1) is None

    # Mid-stream: the encoders see frames 0..3, the objects start at frame 3.
    live = answering.init_video_session(None, max_new_tokens=20)
    for frame in video[:3]:
        live.step(frame)
    live.add_frame(video[3])
    live.add_text_prompt("describe")
    assert live.prompts[0].frame_idx == 3
    assert live.prompts[0].encoder_frames == answering.processor.encoder_frame_indices(4)
    assert [o.frame_idx for o in live.propagate()] == [3]


def test_model_level_api_and_bad_inputs(answering):
    video = _video(t=9)
    session = answering.init_video_session(video, max_new_tokens=20)
    ids = session.add_text_prompt(["describe", "describe"])
    assert ids == [0, 1, 2, 3] and session.prompt_to_obj_ids == {"describe": [0, 1, 2, 3]}
    head = list(answering.propagate_in_video_iterator(session, max_frame_num_to_track=4))
    tail = list(answering.propagate_in_video_iterator(session, show_progress_bar=True))
    assert [o.frame_idx for o in head + tail] == list(range(9))
    result = answering.predict(video, "describe", max_new_tokens=20)
    masks = torch.stack([o.masks for o in head + tail], 1)  # (N, T, H, W)
    for k in range(2):  # each prompt's objects are its own group: as `predict` alone
        assert torch.equal(masks[k], result.masks[k]) and torch.equal(masks[2 + k], result.masks[k])
    with pytest.raises(InputError, match="live sessions"):
        session.add_frame(video[0])
    with pytest.raises(InputError, match="outside the video"):
        answering.init_video_session(video).add_prompt_embeddings(_seg(answering, 1, 0), frame_idx=9)
    live = answering.init_video_session(None)
    with pytest.raises(InputError, match="no frame pushed"):
        live.add_text_prompt("describe")
    with pytest.raises(InputError, match="uint8"):
        live.add_frame(video[0].astype(np.float32))
    live.add_frame(video[0])
    with pytest.raises(ShapeMismatchError, match="stream is"):
        live.add_frame(video[0][:10])
    with pytest.raises(ShapeMismatchError, match="prompt embeddings"):
        live.add_prompt_embeddings(torch.zeros(2, 3))
