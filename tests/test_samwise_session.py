"""The SAMWISE video session: clip tracking, live == whole video, objects added / removed mid-video."""

import numpy as np
import pytest
import torch
from PIL import Image

from videoglamm.errors import InputError
from videoglamm.samwise.config import SAMWISEConfig
from videoglamm.samwise.model import SAMWISE
from videoglamm.samwise.streaming import ClipTracker


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return SAMWISE(SAMWISEConfig.from_preset("samwise-tiny")).eval()


def _video(t=7, h=40, w=52, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def _run(session, **kw):
    return [(o.frame_idx, list(o.object_ids), o.masks, o.scores) for o in session.propagate(**kw)]


def _clip_by_clip(model, video, prompts, length):
    tracker = ClipTracker(model, prompts)
    logits, scores = zip(*(tracker.step(torch.from_numpy(video[s : s + length])) for s in range(0, len(video), length)))
    return torch.cat(logits) > model.config.inference.mask_threshold, torch.cat(scores)  # (T, K, H, W), (T, K)


def test_session_is_clip_tracking(tiny):
    video, prompts = _video(), ["the red circle", "the shape moving left"]
    session = tiny.init_video_session(video, clip_length=3)  # clips of 3, 3 and 1 frames
    assert session.add_text_prompt(prompts) == [0, 1]
    outputs = _run(session)
    masks, scores = _clip_by_clip(tiny, video, prompts, 3)
    assert [o[0] for o in outputs] == list(range(7)) and all(o[1] == [0, 1] for o in outputs)
    assert torch.equal(torch.stack([o[2] for o in outputs]), masks)
    assert torch.equal(torch.stack([o[3] for o in outputs]), scores)
    assert session.prompt_to_obj_ids == {"the red circle": [0], "the shape moving left": [1]}


def test_live_pushed_frames_equal_the_whole_video(tiny):
    video = _video()
    whole = tiny.init_video_session(video, clip_length=3)
    whole.add_text_prompt("the red circle")
    expected = _run(whole)
    live = tiny.init_video_session(None, clip_length=3)
    live.add_text_prompt("the red circle")
    got = []
    for frame in video:
        live.add_frame(frame)
        got += _run(live)  # a frame comes out once its clip is complete
        assert live.retained_frames <= 3
    assert [o[0] for o in got] == list(range(6))
    live.end_stream()
    got += _run(live)  # the last, shorter clip
    with pytest.raises(InputError, match="not ended"):
        live.add_frame(video[0])
    assert len(got) == 7
    assert all(torch.equal(a[2], b[2]) and torch.equal(a[3], b[3]) for a, b in zip(got, expected))


def test_expression_added_mid_video_starts_at_its_frame(tiny):
    video = _video(t=9)
    session = tiny.init_video_session(video, clip_length=2)
    session.add_text_prompt("the red circle")
    head = _run(session, max_frame_num_to_track=2)
    assert session.add_text_prompt("the shape moving left", frame_idx=3) == [1]
    with pytest.raises(InputError, match="already read"):
        session.add_text_prompt("late", frame_idx=1)
    outputs = head + _run(session)
    assert [o[0] for o in outputs] == list(range(9))
    first = torch.stack([o[2][0] for o in outputs])
    masks, scores = _clip_by_clip(tiny, video, ["the red circle"], 2)
    assert torch.equal(first, masks[:, 0])  # untouched by the expression added beside it
    second = [(o[2][1], o[3][1]) for o in outputs if 1 in o[1]]
    assert len(second) == 7 and not second[0][0].any() and torch.isinf(second[0][1])  # frame 2: empty
    # From frame 3 on: a video starting at frame 3 (its clips and frame indices count from there).
    fresh_masks, fresh_scores = _clip_by_clip(tiny, video[3:], ["the shape moving left"], 2)
    assert torch.equal(torch.stack([m for m, _ in second[1:]]), fresh_masks[:, 0])
    assert torch.equal(torch.stack([s for _, s in second[1:]]), fresh_scores[:, 0])


def test_removed_expression_stops_and_memory_is_bounded(tiny):
    session = tiny.init_video_session(None, clip_length=2)
    session.add_text_prompt(["the red circle", "the shape moving left"])
    entries = []
    for i, frame in enumerate(_video(t=40, seed=1)):
        session.add_frame(frame)
        for out in session.propagate():
            assert out.object_ids == ([0, 1] if out.frame_idx < 20 else [1])
        if i == 19:
            session.remove_object(0)
        if i >= 24:
            entries.append(session.memory_entries)
        assert session.retained_frames <= 2
    assert len(set(entries)) == 1  # SAM2's windows, whatever the length
    with pytest.raises(InputError, match="no object 0"):
        session.remove_object(0)


def test_frame_folder_equals_the_array(tiny, tmp_path):
    video = _video(t=5)
    for i, frame in enumerate(video):
        Image.fromarray(frame).save(tmp_path / f"frame_{i:03d}.png")
    a = tiny.predict(str(tmp_path), ["the red circle"], clip_length=2)[0]
    b = tiny.predict(video, ["the red circle"], clip_length=2)[0]
    assert torch.equal(a.masks[0], b.masks[0]) and torch.equal(a.scores, b.scores)
