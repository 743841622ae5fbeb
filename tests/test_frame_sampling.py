"""The official frame rules (reference videoglamm.md §2.1, `chat.py`, `utils/enc_preprocessors.py`), re-derived
here with numpy: encoder frames `np.linspace(0, T-1, n, dtype=int)` for a longer video, every frame then the
last repeated for a shorter one; training SAM frames `np.linspace(0, m-1, 8, dtype=int)` over the m distinct
encoder frames; video files decoded at 1 fps and capped at 64 frames."""

import numpy as np
import pytest

from videoglamm.config import VideoGLaMMConfig
from videoglamm.errors import ConfigError, InputError
from videoglamm.modeling.predict import PredictOptions
from videoglamm.processing.frames import decoded_frame_pool, sample_frame_indices, subsample


def _official_encoder_frames(t: int, n: int) -> list[int]:
    frames = list(range(t))
    if t > n:
        frames = [frames[i] for i in np.linspace(0, t - 1, n, dtype=int)]
    while len(frames) < n:  # EncPreprocessor_VideoGPTPlus pads with the last frame
        frames.append(frames[-1])
    return frames


@pytest.mark.parametrize("t", [1, 2, 5, 15, 16, 17, 31, 64, 100, 1001])
@pytest.mark.parametrize("n", [8, 16])
def test_uniform_is_the_official_truncating_linspace_with_last_frame_padding(t, n):
    assert sample_frame_indices(t, n, "uniform") == _official_encoder_frames(t, n)


def test_uniform_differs_from_rounding_where_the_official_truncates():
    # 100 frames, 16 picks: the rounded grid (our old default, now "spread") moves 7 of the 16 frames.
    official = _official_encoder_frames(100, 16)
    rounded = [int(round(x)) for x in np.linspace(0, 99, 16)]
    assert sample_frame_indices(100, 16, "spread") == rounded
    assert sum(a != b for a, b in zip(official, rounded)) > 0
    assert sample_frame_indices(100, 16) == official


@pytest.mark.parametrize("t", [5, 16, 40, 300])
def test_training_sam_frames_follow_the_official_linspace(t):
    enc = _official_encoder_frames(t, 16)
    distinct = sorted(set(enc))
    expected = [distinct[i] for i in np.linspace(0, len(distinct) - 1, 8, dtype=int)]
    assert subsample(enc, 8, "uniform") == expected
    if t == 5:  # a 5-frame clip repeats SAM frames, as the official training does
        assert expected == [0, 0, 1, 1, 2, 2, 3, 4]


@pytest.mark.parametrize("fps, t", [(30.0, 95), (24.0, 2000), (29.97, 300), (1.0, 10), (0.4, 9), (12.5, 100)])
def test_file_pool_is_one_frame_per_second_capped_at_64(fps, t):
    stride = max(1, int(round(fps / 1)))
    pool = list(range(0, t, stride))
    if len(pool) > 64:
        pool = [pool[i] for i in np.linspace(0, len(pool) - 1, 64, dtype=int)]
    assert decoded_frame_pool(t, fps, 1.0, 64) == pool
    assert decoded_frame_pool(t, fps, None, None) == list(range(t))


def test_inference_defaults_are_the_official_ones_and_travel_with_the_config(tmp_path):
    cfg = VideoGLaMMConfig.from_preset("videoglamm-phi3-mini")
    inf = cfg.inference
    assert (inf.frame_sampling, inf.video_fps, inf.max_video_frames, inf.max_new_tokens, inf.mask_mode,
            inf.prompt_frames) == ("uniform", 1.0, 64, 512, "track", "first")
    custom = VideoGLaMMConfig.from_preset("videoglamm-tiny", inference={"mask_mode": "framewise", "max_new_tokens": 7})
    custom.save_pretrained(tmp_path)
    back = VideoGLaMMConfig.from_pretrained(tmp_path)
    opts = PredictOptions.for_model(back)
    assert (opts.mask_mode, opts.max_new_tokens, opts.frame_sampling) == ("framewise", 7, "uniform")
    assert PredictOptions.for_model(back, mask_mode="track").mask_mode == "track"


def test_bad_inference_options_are_refused():
    cfg = VideoGLaMMConfig.from_preset("videoglamm-tiny")
    with pytest.raises(InputError, match=r"unknown predict option\(s\) \['mask_mod'\]"):
        PredictOptions.for_model(cfg, mask_mod="track")
    for bad, match in [({"num_frames": 0}, "num_frames"), ({"max_new_tokens": -1}, "max_new_tokens"),
                       ({"frame_sampling": "random"}, "frame_sampling"), ({"video_fps": 0}, "video_fps"),
                       ({"do_sample": True, "temperature": 0}, "temperature > 0")]:
        with pytest.raises(InputError, match=match):
            PredictOptions.for_model(cfg, **bad)
    with pytest.raises(ConfigError, match="inference.mask_mode"):
        VideoGLaMMConfig.from_preset("videoglamm-tiny", inference={"mask_mode": "sometimes"})
