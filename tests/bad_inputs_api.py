"""API cases: predict options, prompts, videos, SAMWISE predict."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from bad_input_corpus import Env, Outcome, case, expect_error, expect_ok
from bad_input_fixtures import frame_folder, frames, predict, video_file


# --------------------------------------------------------------------------- API: predict options

@case("api")
def api_num_frames_zero(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), num_frames=0), InputError, "num_frames", "positive")


@case("api")
def api_max_new_tokens_negative(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), max_new_tokens=-1), InputError, "max_new_tokens")


@case("api")
def api_max_new_tokens_float(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), max_new_tokens=2.5), InputError, "max_new_tokens", "integer")


@case("api")
def api_temperature_zero_with_sampling(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), do_sample=True, temperature=0), InputError, "temperature")


@case("api")
def api_top_p_zero_with_sampling(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), do_sample=True, top_p=0), InputError, "top_p")


@case("api")
def api_unknown_option(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), num_frame=8), InputError, "unknown predict option", "num_frame")


@case("api")
def api_bad_frame_sampling(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), frame_sampling="random"), InputError, "frame_sampling")


@case("api")
def api_bad_mask_mode(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), mask_mode="tracked"), InputError, "mask_mode")


@case("api")
def api_video_fps_zero(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), video_fps=0), InputError, "video_fps")


@case("api")
def api_num_frames_not_a_multiple(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), num_frames=6), InputError, "num_frames", "multiple")


@case("api")
def api_frame_indices_out_of_range(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), frame_indices=[0, 1, 2, 99] * 2), InputError, "99", "frame")


@case("api")
def api_use_cache_not_bool(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), do_sample="no"), InputError, "do_sample", "true or false")


# --------------------------------------------------------------------------- API: prompts

@case("api")
def api_prompt_not_a_string(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), prompt=123), InputError, "prompt", "int")


@case("api")
def api_prompt_list_with_none(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), prompt=["What is it?", None]), InputError, "prompt", "NoneType")


@case("api")
def api_prompt_empty_list(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), prompt=[]), InputError, "no prompt")


@case("api")
def api_prompt_blank(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env), prompt="   "), InputError, "prompt", "empty")


@case("api")
def api_prompt_longer_than_context(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    long = "Where is the red circle moving " * 400
    return expect_error(env, predict(env, frames(env), prompt=long), InputError, "context", "tokens")


@case("api")
def api_prompt_plus_answer_past_context(env: Env) -> Outcome:
    """A prompt that fits but leaves no room for max_new_tokens is refused, not cut off mid-answer."""
    from videoglamm.errors import InputError
    long = "red " * 700
    return expect_error(env, predict(env, frames(env), prompt=long, max_new_tokens=900), InputError,
                        "context", "max_new_tokens")


# --------------------------------------------------------------------------- API: videos

@case("api")
def api_video_missing_file(env: Env) -> Outcome:
    from videoglamm.errors import VideoReadError
    return expect_error(env, predict(env, str(env.tmp / "nope.mp4")), VideoReadError, "not found", "nope.mp4")


@case("api")
def api_video_garbage_file(env: Env) -> Outcome:
    from videoglamm.errors import VideoReadError
    bad = env.tmp / "broken.mp4"
    bad.write_bytes(os.urandom(2048))
    return expect_error(env, predict(env, str(bad)), VideoReadError, "broken.mp4")


@case("api")
def api_video_truncated_file(env: Env) -> Outcome:
    from videoglamm.errors import VideoReadError
    path = video_file(env)
    cut = env.tmp / "cut.mp4"
    cut.write_bytes(path.read_bytes()[:300])
    return expect_error(env, predict(env, str(cut)), VideoReadError, "cut.mp4")


@case("api")
def api_video_frame_folder_is_accepted(env: Env) -> Outcome:
    folder = frame_folder(env)

    def check(result: Any) -> str | None:
        if not result.masks or result.masks[0].shape[0] != 8:
            return f"expected one (8, H, W) track, got {[tuple(m.shape) for m in result.masks]}"
        return None
    return expect_ok(env, predict(env, str(folder)), check)


@case("api")
def api_video_frame_folder_pathlike(env: Env) -> Outcome:
    folder = frame_folder(env, ext="png")
    return expect_ok(env, predict(env, folder), lambda r: None if r.masks[0].shape[0] == 8 else "wrong T")


@case("api")
def api_video_empty_folder(env: Env) -> Outcome:
    from videoglamm.errors import VideoReadError
    (env.tmp / "empty").mkdir()
    return expect_error(env, predict(env, str(env.tmp / "empty")), VideoReadError, "no image", "empty")


@case("api")
def api_video_folder_with_corrupt_frame(env: Env) -> Outcome:
    from videoglamm.errors import VideoReadError
    folder = frame_folder(env)
    (folder / "00003.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return expect_error(env, predict(env, str(folder)), VideoReadError, "00003.jpg")


@case("api")
def api_video_folder_mixed_sizes(env: Env) -> Outcome:
    from PIL import Image

    from videoglamm.errors import ShapeMismatchError
    folder = frame_folder(env)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(folder / "00002.jpg")
    return expect_error(env, predict(env, str(folder)), ShapeMismatchError, "00002.jpg")


@case("api")
def api_video_list_of_image_paths(env: Env) -> Outcome:
    folder = frame_folder(env, ext="png")
    paths = [str(p) for p in sorted(folder.iterdir())]
    return expect_ok(env, predict(env, paths), lambda r: None if r.masks[0].shape[0] == 8 else "wrong T")


@case("api")
def api_video_list_with_missing_path(env: Env) -> Outcome:
    from videoglamm.errors import VideoReadError
    folder = frame_folder(env, ext="png")
    paths = [str(p) for p in sorted(folder.iterdir())] + [str(folder / "gone.png")]
    return expect_error(env, predict(env, paths), VideoReadError, "gone.png", "not found")


@case("api")
def api_video_float_array(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env).astype(np.float32)), InputError, "uint8")


@case("api")
def api_video_channels_first(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env).transpose(0, 3, 1, 2)), InputError, "(T, H, W, 3)")


@case("api")
def api_video_zero_frames(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, np.zeros((0, 48, 64, 3), np.uint8)), InputError, "zero frames")


@case("api")
def api_video_none(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, None), InputError, "needs a video", "got None", "init_video_session")


@case("api")
def api_video_mixed_size_pil(env: Env) -> Outcome:
    from PIL import Image

    from videoglamm.errors import ShapeMismatchError
    images = [Image.new("RGB", (64, 48)), Image.new("RGB", (32, 32))]
    return expect_error(env, predict(env, images), ShapeMismatchError, "mixed sizes")


@case("api")
def api_video_single_image_array(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, predict(env, frames(env)[0]), InputError, "(T, H, W, 3)")


@case("api")
def api_shipped_model_default_predict_has_masks(env: Env) -> Outcome:
    """The shipped demo model carries its own inference defaults: a plain predict() finds the shape."""
    from videoglamm.data.synthetic import generate_video
    video = generate_video(2026, 0, num_frames=8, size=(96, 128))
    phrase = next(e for e in video.expressions if e["kind"] == "appearance")["exp"]

    def check(result: Any) -> str | None:
        if not result.masks:
            return "no [SEG] track"
        empty = [t for t in range(8) if not result.masks[0][t].any()]
        return f"empty masks on frames {empty}" if len(empty) > 2 else None
    return expect_ok(env, predict(env, video.frames, f"Please segment {phrase}."), check)


# --------------------------------------------------------------------------- SAMWISE predict

def samwise(env: Env) -> Any:
    if "samwise" not in env.cache:
        from videoglamm.samwise.model import SAMWISE

        env.cache["samwise"] = SAMWISE.from_pretrained("samwise-tiny").eval()
    return env.cache["samwise"]


@case("api")
def samwise_long_prompt_is_refused(env: Env) -> Outcome:
    # The official SAMWISE does not truncate captions; past the text encoder's positions it cannot run them.
    from videoglamm.errors import InputError

    long = "the red circle that moves to the left of the blue square " * 20
    return expect_error(env, lambda: samwise(env).predict(frames(env, 4), [long]), InputError, "at most", "shorten")


@case("api")
def samwise_prompt_not_a_string(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, lambda: samwise(env).predict(frames(env, 4), [42]), InputError, "prompt", "int")


@case("api")
def samwise_unknown_option(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, lambda: samwise(env).predict(frames(env, 4), ["a"], clip_len=4), InputError,
                        "clip_len")
