"""The cases of `bad_input_corpus`: API, CLI, loading, scoring, conversion, training, runners, writers,
dependencies. Each names the exact error class and words the user must see (see the corpus module)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bad_input_corpus import (ROOT, Env, Outcome, case, expect_cli, expect_error, expect_ok, expect_script,
                              expect_warning, snapshot)

SHIPPED = "videoglamm-tiny-synthetic"
TRAIN = "train/train.py"


# --------------------------------------------------------------------------- shared, built once

def model(env: Env) -> Any:
    if "model" not in env.cache:
        from videoglamm.modeling.videoglamm import VideoGLaMM

        env.cache["model"] = VideoGLaMM.from_pretrained(SHIPPED).eval()
    return env.cache["model"]


def frames(env: Env, t: int = 8) -> np.ndarray:
    from videoglamm.data.synthetic import generate_video

    key = f"frames{t}"
    if key not in env.cache:
        env.cache[key] = generate_video(3, 0, num_frames=t, size=(48, 64)).frames
    return env.cache[key]


def video_file(env: Env) -> Path:
    """A tiny mp4, written into this case's folder (so it is part of what must stay unchanged)."""
    from videoglamm.visualize import write_video

    path = env.tmp / "clip.mp4"
    write_video(path, frames(env))
    return path


def frame_folder(env: Env, name: str = "frames", ext: str = "jpg") -> Path:
    from PIL import Image

    folder = env.tmp / name
    folder.mkdir()
    for i, frame in enumerate(frames(env)):
        Image.fromarray(frame).save(folder / f"{i:05d}.{ext}")
    return folder


def model_copy(env: Env) -> Path:
    """A writable copy of the shipped model folder."""
    from videoglamm.modeling.persistence import PACKAGED_MODELS

    dst = env.tmp / "model"
    shutil.copytree(PACKAGED_MODELS / SHIPPED, dst)
    return dst


def load(path: Path, **kw: Any) -> Any:
    from videoglamm.modeling.videoglamm import VideoGLaMM

    return lambda: VideoGLaMM.from_pretrained(path, **kw)


def user_file(env: Env, name: str = "notes.txt") -> Path:
    path = env.tmp / name
    path.write_text("the user's own file\n")
    return path


class Bomb:
    """Unpickling this creates a marker file: loading must never get that far."""

    marker = ""

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def pickle_bomb(path: Path, marker: Path) -> Path:
    Bomb.marker = str(marker)
    import torch

    torch.save({"weight": Bomb()}, path)
    return path


def predict(env: Env, video: Any, prompt: Any = "What is moving?", **kw: Any) -> Any:
    return lambda: model(env).predict(video, prompt, **kw)


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
    return expect_error(env, predict(env, None), InputError, "unsupported video type", "NoneType")


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


# --------------------------------------------------------------------------- API: loading

@case("load")
def load_missing_folder(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    return expect_error(env, load(env.tmp / "nowhere"), CheckpointError, "nowhere", "neither a preset")


@case("load")
def load_config_json_malformed(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    (path / "config.json").write_text('{"model_type": "videoglamm", ')
    return expect_error(env, load(path), CheckpointError, "config.json", "not valid JSON")


@case("load")
def load_config_json_not_an_object(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    (path / "config.json").write_text("[1, 2, 3]\n")
    return expect_error(env, load(path), CheckpointError, "config.json", "object")


@case("load")
def load_config_unknown_top_level_field(env: Env) -> Outcome:
    from videoglamm.errors import ConfigError
    path = model_copy(env)
    raw = json.loads((path / "config.json").read_text())
    raw["mask_treshold"] = 0.3
    (path / "config.json").write_text(json.dumps(raw))
    return expect_error(env, load(path), ConfigError, "mask_treshold", "config.json")


@case("load")
def load_config_unknown_section_field(env: Env) -> Outcome:
    from videoglamm.errors import ConfigError
    path = model_copy(env)
    raw = json.loads((path / "config.json").read_text())
    raw["inference"]["max_tokens"] = 10
    (path / "config.json").write_text(json.dumps(raw))
    return expect_error(env, load(path), ConfigError, "max_tokens", "inference")


@case("load")
def load_config_wrong_type(env: Env) -> Outcome:
    from videoglamm.errors import ConfigError
    path = model_copy(env)
    raw = json.loads((path / "config.json").read_text())
    raw["adapter"]["trainable"] = "yes"
    (path / "config.json").write_text(json.dumps(raw))
    return expect_error(env, load(path), ConfigError, "adapter.trainable", "true or false")


@case("load")
def load_weights_truncated(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    return expect_error(env, load(path), CheckpointError, "model.safetensors")


@case("load")
def load_weights_garbage(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    (path / "model.safetensors").write_bytes(os.urandom(4096))
    return expect_error(env, load(path), CheckpointError, "model.safetensors")


@case("load")
def load_weights_empty_file(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    (path / "model.safetensors").write_bytes(b"")
    return expect_error(env, load(path), CheckpointError, "model.safetensors")


@case("load")
def load_weights_pickle_is_refused(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    marker = env.tmp / "PICKLE_RAN"
    pickle_bomb(path / "model.safetensors", marker)
    outcome = expect_error(env, load(path), CheckpointError, "model.safetensors", "safetensors")
    return Outcome("silent-wrong", "the pickle was executed") if marker.exists() else outcome


@case("load")
def load_llm_weights_pickle_is_refused(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    marker = env.tmp / "PICKLE_RAN"
    (path / "llm" / "model.safetensors").unlink()
    pickle_bomb(path / "llm" / "pytorch_model.bin", marker)
    outcome = expect_error(env, load(path), CheckpointError, "llm")
    return Outcome("silent-wrong", "the pickle was executed") if marker.exists() else outcome


@case("load")
def load_weights_wrong_shape(env: Env) -> Outcome:
    from safetensors.torch import load_file, save_file

    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    state = load_file(path / "model.safetensors")
    name = sorted(k for k, v in state.items() if v.ndim == 2)[0]
    state[name] = state[name][:, :-1].contiguous()
    save_file(state, path / "model.safetensors")
    return expect_error(env, load(path), CheckpointError, name, "shape")


@case("load")
def load_weights_missing_key(env: Env) -> Outcome:
    from safetensors.torch import load_file, save_file

    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    state = load_file(path / "model.safetensors")
    name = sorted(state)[0]
    del state[name]
    save_file(state, path / "model.safetensors")
    return expect_error(env, load(path), CheckpointError, name, "missing")


@case("load")
def load_llm_weights_truncated(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    llm = path / "llm" / "model.safetensors"
    llm.write_bytes(llm.read_bytes()[:1000])
    return expect_error(env, load(path), CheckpointError, "llm")


@case("load")
def load_llm_config_malformed(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    (path / "llm" / "config.json").write_text("{not json")
    return expect_error(env, load(path), CheckpointError, "llm", "config.json")


@case("load")
def load_llm_wrong_shape(env: Env) -> Outcome:
    from safetensors.torch import load_file, save_file

    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    state = load_file(path / "llm" / "model.safetensors")
    name = "model.embed_tokens.weight"
    state[name] = state[name][:-3].contiguous()
    save_file(state, path / "llm" / "model.safetensors", metadata={"format": "pt"})
    return expect_error(env, load(path), CheckpointError, "embed_tokens", "shape")


@case("load")
def load_tokenizer_missing(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    (path / "tokenizer.json").unlink()
    return expect_error(env, load(path), CheckpointError, "tokenizer")


@case("load")
def load_tokenizer_malformed(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    (path / "tokenizer.json").write_text("{")
    return expect_error(env, load(path), CheckpointError, "tokenizer.json")


@case("load")
def load_wrong_model_type(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    raw = json.loads((path / "config.json").read_text())
    raw["model_type"] = "llava"
    (path / "config.json").write_text(json.dumps(raw))
    return expect_error(env, load(path), CheckpointError, "llava")


@case("load")
def load_device_cuda_without_gpu(env: Env) -> Outcome:
    import torch

    from videoglamm.errors import InputError
    if torch.cuda.is_available():
        return Outcome("handled", "a GPU is present: nothing to refuse")
    return expect_error(env, load(SHIPPED, device="cuda"), InputError, "cuda", "--device cpu")


@case("load")
def load_device_unknown(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, load(SHIPPED, device="gpu0"), InputError, "gpu0", "device")


@case("load")
def load_bad_quantization(env: Env) -> Outcome:
    from videoglamm.errors import ConfigError
    return expect_error(env, load(SHIPPED, quantization="3bit"), ConfigError, "3bit", "quantization")


@case("load")
def load_adapter_missing(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    return expect_error(env, load(SHIPPED, adapter=env.tmp / "no_adapter"), CheckpointError, "adapter")


@case("load")
def load_samwise_truncated(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    from videoglamm.samwise.model import SAMWISE

    if "samwise_dir" not in env.cache:
        folder = env.tmp.parent / "samwise_tiny_saved"
        SAMWISE.from_pretrained("samwise-tiny").save_pretrained(folder)
        env.cache["samwise_dir"] = folder
    path = env.tmp / "sw"
    shutil.copytree(env.cache["samwise_dir"], path)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[:5000])
    return expect_error(env, lambda: SAMWISE.from_pretrained(path), CheckpointError, "model.safetensors")


@case("load")
def load_samwise_config_malformed(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    from videoglamm.samwise.model import SAMWISE

    path = env.tmp / "sw"
    path.mkdir()
    (path / "config.json").write_text("{{")
    return expect_error(env, lambda: SAMWISE.from_pretrained(path), CheckpointError, "config.json", "JSON")


# --------------------------------------------------------------------------- SAMWISE predict

def samwise(env: Env) -> Any:
    if "samwise" not in env.cache:
        from videoglamm.samwise.model import SAMWISE

        env.cache["samwise"] = SAMWISE.from_pretrained("samwise-tiny").eval()
    return env.cache["samwise"]


@case("api")
def samwise_long_prompt_warns(env: Env) -> Outcome:
    long = "the red circle that moves to the left of the blue square " * 20
    return expect_warning(lambda: samwise(env).predict(frames(env, 4), [long]), "prompt", "truncated")


@case("api")
def samwise_prompt_not_a_string(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, lambda: samwise(env).predict(frames(env, 4), [42]), InputError, "prompt", "int")


@case("api")
def samwise_unknown_option(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, lambda: samwise(env).predict(frames(env, 4), ["a"], clip_len=4), InputError,
                        "clip_len")


# --------------------------------------------------------------------------- CLI: predict / demo

def _predict_argv(video: Path | str, out: Path, *extra: str) -> list[str]:
    return ["predict", str(video), "What is moving?", "--model", SHIPPED, "--out", str(out), "--no-progress",
            *extra]


@case("cli")
def cli_predict_missing_video(env: Env) -> Outcome:
    return expect_cli(env, _predict_argv(env.tmp / "nope.mp4", env.tmp / "out"), "nope.mp4", "not found")


@case("cli")
def cli_predict_frame_folder(env: Env) -> Outcome:
    from videoglamm.cli import main
    folder = frame_folder(env)
    out = env.tmp / "out"

    def check(rc: Any) -> str | None:
        if rc != 0:
            return f"exit {rc}"
        result = json.loads((out / "result.json").read_text())
        return None if result["num_frames"] == 8 else f"num_frames {result['num_frames']}"
    return expect_ok(env, lambda: main(_predict_argv(folder, out)), check)


@case("cli")
def cli_predict_fps_zero(env: Env) -> Outcome:
    return expect_cli(env, _predict_argv(video_file(env), env.tmp / "out", "--fps", "0"), "--fps")


@case("cli")
def cli_predict_fps_negative(env: Env) -> Outcome:
    return expect_cli(env, _predict_argv(video_file(env), env.tmp / "out", "--fps", "-3"), "--fps")


@case("cli")
def cli_predict_num_frames_zero(env: Env) -> Outcome:
    return expect_cli(env, _predict_argv(video_file(env), env.tmp / "out", "--num-frames", "0"), "num_frames")


@case("cli")
def cli_predict_max_new_tokens_negative(env: Env) -> Outcome:
    return expect_cli(env, _predict_argv(video_file(env), env.tmp / "out", "--max-new-tokens", "-5"),
                      "max_new_tokens")


@case("cli")
def cli_predict_out_is_a_file(env: Env) -> Outcome:
    target = user_file(env, "result.txt")
    return expect_cli(env, _predict_argv(video_file(env), target), "result.txt", "is a file")


@case("cli")
def cli_predict_out_under_a_file(env: Env) -> Outcome:
    target = user_file(env, "result.txt")
    return expect_cli(env, _predict_argv(video_file(env), target / "sub"), "result.txt", "not a folder")


@case("cli")
def cli_predict_device_cuda_without_gpu(env: Env) -> Outcome:
    import torch
    if torch.cuda.is_available():
        return Outcome("handled", "a GPU is present")
    return expect_cli(env, _predict_argv(video_file(env), env.tmp / "out", "--device", "cuda"), "cuda",
                      "--device cpu")


@case("cli")
def cli_predict_corrupt_video(env: Env) -> Outcome:
    bad = env.tmp / "bad.avi"
    bad.write_bytes(b"RIFF" + os.urandom(500))
    return expect_cli(env, _predict_argv(bad, env.tmp / "out"), "bad.avi")


@case("cli")
def cli_predict_unknown_model(env: Env) -> Outcome:
    argv = _predict_argv(video_file(env), env.tmp / "out")
    argv[argv.index(SHIPPED)] = str(env.tmp / "no_model")
    return expect_cli(env, argv, "no_model")


@case("cli")
def cli_predict_empty_prompt(env: Env) -> Outcome:
    argv = _predict_argv(video_file(env), env.tmp / "out")
    argv[2] = ""
    return expect_cli(env, argv, "prompt", "empty")


@case("cli")
def cli_predict_rerun_cleans_a_killed_runs_temp_folder(env: Env) -> Outcome:
    from videoglamm.cli import main
    video = video_file(env)
    out = env.tmp / "out"
    # What a run killed with SIGKILL leaves: its temporary sibling folder, from a process now gone.
    code = ("import sys; from videoglamm.modeling.persistence import atomic_dir; from pathlib import Path; "
            "tmp, _ = atomic_dir(Path(sys.argv[1])); (tmp / 'answer.txt').write_text('half')")
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, cwd=ROOT)
    leftovers = [p.name for p in env.tmp.iterdir() if p.name.startswith(".")]
    if not leftovers:
        return Outcome("unclear", "the simulated killed run left no temp folder to clean")
    return expect_ok(env, lambda: main(_predict_argv(video, out)),
                     lambda rc: None if rc == 0 and (out / "result.json").is_file() else f"exit {rc}")


@case("cli")
def cli_predict_interrupted_leaves_nothing(env: Env) -> Outcome:
    from videoglamm import visualize
    from videoglamm.cli import main
    video = video_file(env)
    before = snapshot(env.tmp)
    original = visualize.VideoWriter.write

    def interrupt(self: Any, frame: Any) -> None:
        raise KeyboardInterrupt

    visualize.VideoWriter.write = interrupt
    try:
        import contextlib
        import io
        with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(_predict_argv(video, env.tmp / "out"))
            except KeyboardInterrupt:
                rc = "KeyboardInterrupt escaped"
    finally:
        visualize.VideoWriter.write = original
    after = snapshot(env.tmp)
    if after != before:
        return Outcome("partial-output", f"left {sorted(set(after) - set(before))[:5]}")
    if rc != 130 or "interrupted" not in err.getvalue():
        return Outcome("unclear", f"exit {rc}, stderr {err.getvalue()[-200:]!r}")
    return Outcome("handled")


@case("cli")
def cli_unexpected_exception_is_one_line_with_a_debug_hint(env: Env) -> Outcome:
    from videoglamm.modeling import videoglamm as vg
    original = vg.VideoGLaMM.from_pretrained

    def broken(*a: Any, **k: Any) -> Any:
        raise ZeroDivisionError("simulated bug")

    vg.VideoGLaMM.from_pretrained = broken
    try:
        return expect_cli(env, _predict_argv(video_file(env), env.tmp / "out"), "simulated bug", "--debug",
                          "bug", code=1)
    finally:
        vg.VideoGLaMM.from_pretrained = original


@case("cli")
def cli_debug_prints_the_traceback(env: Env) -> Outcome:
    import contextlib
    import io

    from videoglamm.cli import main
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            rc = main(["--debug", *_predict_argv(env.tmp / "nope.mp4", env.tmp / "out")])
        except BaseException as exc:  # noqa: BLE001
            return Outcome("traceback", f"{type(exc).__name__} escaped main() instead of being printed")
    text = err.getvalue()
    if rc == 2 and "Traceback (most recent call last)" in text and "nope.mp4" in text:
        return Outcome("handled")
    return Outcome("unclear", f"exit {rc}; stderr {text[-300:]!r}")


@case("cli")
def cli_demo_frames_zero(env: Env) -> Outcome:
    return expect_cli(env, ["demo", "--out", str(env.tmp / "demo"), "--frames", "0", "--no-progress"], "--frames")


@case("cli")
def cli_demo_out_is_a_file(env: Env) -> Outcome:
    target = user_file(env)
    return expect_cli(env, ["demo", "--out", str(target), "--frames", "2", "--no-progress"], "notes.txt",
                      "is a file")


@case("cli")
def cli_demo_bad_model(env: Env) -> Outcome:
    return expect_cli(env, ["demo", "--out", str(env.tmp / "demo"), "--model", str(env.tmp / "none"),
                            "--no-progress"], "none")


@case("cli")
def cli_argparse_error_is_one_line(env: Env) -> Outcome:
    return expect_cli(env, ["predict", "--num-frames", "many"], "--num-frames")


# --------------------------------------------------------------------------- CLI: score

def _davis(env: Env, seq: str = "s") -> tuple[Path, Path]:
    from PIL import Image
    gt, pred = env.tmp / "gt", env.tmp / "pred"
    for root in (gt, pred):
        (root / seq).mkdir(parents=True)
        for t in range(3):
            mask = np.zeros((16, 16), np.uint8)
            mask[4:10, 4:10] = 1
            Image.fromarray(mask, mode="L").save(root / seq / f"{t:05d}.png")
    return gt, pred


@case("score")
def score_rvos_corrupt_prediction_png(env: Env) -> Outcome:
    gt, pred = _davis(env)
    (pred / "s" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return expect_cli(env, ["score", "rvos", "--protocol", "davis-semi", "--gt", str(gt), "--pred", str(pred),
                            "--workers", "1"], "00001.png")


@case("score")
def score_rvos_corrupt_gt_png(env: Env) -> Outcome:
    gt, pred = _davis(env)
    (gt / "s" / "00002.png").write_bytes(b"")
    return expect_cli(env, ["score", "rvos", "--protocol", "davis-semi", "--gt", str(gt), "--pred", str(pred),
                            "--workers", "1"], "00002.png")


@case("score")
def score_rvos_jpeg_as_prediction(env: Env) -> Outcome:
    """A (lossy) JPEG saved under a .png name is refused, not scored as a mask."""
    from PIL import Image
    gt, pred = _davis(env)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:10, 4:10] = 1
    Image.fromarray(mask, mode="L").save(pred / "s" / "00001.png", format="JPEG")
    return expect_cli(env, ["score", "rvos", "--protocol", "davis-semi", "--gt", str(gt), "--pred", str(pred),
                            "--workers", "1"], "00001.png", "JPEG")


@case("score")
def score_rvos_missing_gt(env: Env) -> Outcome:
    _, pred = _davis(env)
    return expect_cli(env, ["score", "rvos", "--protocol", "davis-semi", "--gt", str(env.tmp / "nogt"),
                            "--pred", str(pred)], "nogt")


@case("score")
def score_rvos_workers_zero(env: Env) -> Outcome:
    gt, pred = _davis(env)
    return expect_cli(env, ["score", "rvos", "--protocol", "davis-semi", "--gt", str(gt), "--pred", str(pred),
                            "--workers", "0"], "--workers")


@case("score")
def score_rvos_mevis_malformed_meta(env: Env) -> Outcome:
    split = env.tmp / "split"
    split.mkdir()
    (split / "meta_expressions.json").write_text('{"videoz": {}}')
    (split / "mask_dict.json").write_text("{}")
    (env.tmp / "pred").mkdir()
    return expect_cli(env, ["score", "rvos", "--protocol", "mevis", "--gt", str(split), "--pred",
                            str(env.tmp / "pred")], "meta_expressions.json", "videos")


@case("score")
def score_rvos_mevis_truncated_json(env: Env) -> Outcome:
    split = env.tmp / "split"
    split.mkdir()
    (split / "meta_expressions.json").write_text('{"videos": {"v": {"frames": ["0')
    (split / "mask_dict.json").write_text("{}")
    (env.tmp / "pred").mkdir()
    return expect_cli(env, ["score", "rvos", "--protocol", "mevis", "--gt", str(split), "--pred",
                            str(env.tmp / "pred")], "meta_expressions.json", "JSON")


@case("score")
def score_captions_malformed_json(env: Env) -> Outcome:
    (env.tmp / "refs.json").write_text("{")
    (env.tmp / "preds.json").write_text("{}")
    return expect_cli(env, ["score", "captions", "--refs", str(env.tmp / "refs.json"), "--preds",
                            str(env.tmp / "preds.json")], "refs.json", "JSON")


@case("score")
def score_captions_refs_not_a_mapping(env: Env) -> Outcome:
    (env.tmp / "refs.json").write_text('["a cat"]')
    (env.tmp / "preds.json").write_text('{"0": "a cat"}')
    return expect_cli(env, ["score", "captions", "--refs", str(env.tmp / "refs.json"), "--preds",
                            str(env.tmp / "preds.json")], "refs.json")


@case("score")
def score_captions_missing_prediction_id(env: Env) -> Outcome:
    (env.tmp / "refs.json").write_text('{"0": ["a cat"], "1": ["a dog"]}')
    (env.tmp / "preds.json").write_text('{"0": "a cat"}')
    return expect_cli(env, ["score", "captions", "--refs", str(env.tmp / "refs.json"), "--preds",
                            str(env.tmp / "preds.json")], "1")


@case("score")
def score_captions_meteor_closes_its_pipes(env: Env) -> Outcome:
    """METEOR runs a Java process: scoring must close its pipes (no ResourceWarning) when it is done."""
    import gc

    from videoglamm.metrics.captions import caption_scores
    if shutil.which("java") is None:
        return Outcome("handled", "no Java: METEOR cannot run here")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        caption_scores({"0": ["a red circle moves left"]}, {"0": "a red circle moves"})
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    return Outcome("silent-wrong", f"ResourceWarning: {leaks[:2]}") if leaks else Outcome("handled")


@case("score")
def score_vg_malformed_gt(env: Env) -> Outcome:
    (env.tmp / "gt.json").write_text('{"0": {"frames": [0]}}')
    (env.tmp / "pred").mkdir()
    return expect_cli(env, ["score", "vg", "--gt", str(env.tmp / "gt.json"), "--pred", str(env.tmp / "pred")],
                      "gt.json")


@case("score")
def score_vg_gt_not_json(env: Env) -> Outcome:
    (env.tmp / "gt.json").write_text("boxes!")
    (env.tmp / "pred").mkdir()
    return expect_cli(env, ["score", "vg", "--gt", str(env.tmp / "gt.json"), "--pred", str(env.tmp / "pred")],
                      "gt.json", "JSON")


@case("score")
def score_gcg_malformed_gt(env: Env) -> Outcome:
    (env.tmp / "gt").mkdir()
    (env.tmp / "pred").mkdir()
    (env.tmp / "gt" / "gcg.json").write_text("{")
    (env.tmp / "pred" / "gcg.json").write_text("{}")
    return expect_cli(env, ["score", "gcg", "--gt", str(env.tmp / "gt"), "--pred", str(env.tmp / "pred"),
                            "--no-captions"], "gcg.json")


@case("score")
def score_out_under_a_file(env: Env) -> Outcome:
    (env.tmp / "refs.json").write_text('{"0": ["a cat"]}')
    (env.tmp / "preds.json").write_text('{"0": "a cat"}')
    blocker = user_file(env)
    return expect_cli(env, ["score", "captions", "--refs", str(env.tmp / "refs.json"), "--preds",
                            str(env.tmp / "preds.json"), "--out", str(blocker / "r.json")], "notes.txt",
                      "not a folder")


@case("score")
def score_bad_text_encoder_spec(env: Env) -> Outcome:
    (env.tmp / "gt").mkdir()
    (env.tmp / "pred").mkdir()
    return expect_cli(env, ["score", "gcg", "--gt", str(env.tmp / "gt"), "--pred", str(env.tmp / "pred"),
                            "--text-encoder", "no_such_module_xyz:encode"], "no_such_module_xyz")


# --------------------------------------------------------------------------- CLI: convert / export / synth

@case("convert")
def convert_samwise_pickle_is_refused(env: Env) -> Outcome:
    marker = env.tmp / "PICKLE_RAN"
    src = pickle_bomb(env.tmp / "release.pth", marker)
    outcome = expect_cli(env, ["convert", "samwise", "--src", str(src), "--preset", "samwise-tiny", "--dst",
                               str(env.tmp / "dst")], "release.pth", "weights_only")
    return Outcome("silent-wrong", "the pickle was executed") if marker.exists() else outcome


@case("convert")
def convert_samwise_truncated(env: Env) -> Outcome:
    import torch
    src = env.tmp / "release.pth"
    torch.save({"model": {"a": torch.zeros(100)}}, src)
    src.write_bytes(src.read_bytes()[:200])
    return expect_cli(env, ["convert", "samwise", "--src", str(src), "--preset", "samwise-tiny", "--dst",
                            str(env.tmp / "dst")], "release.pth")


@case("convert")
def convert_samwise_wrong_keys(env: Env) -> Outcome:
    import torch
    src = env.tmp / "release.pth"
    torch.save({"model": {"a": torch.zeros(3)}}, src)
    return expect_cli(env, ["convert", "samwise", "--src", str(src), "--preset", "samwise-tiny", "--dst",
                            str(env.tmp / "dst")], "release.pth")


@case("convert")
def convert_samwise_dst_is_a_file(env: Env) -> Outcome:
    import torch
    src = env.tmp / "release.pth"
    torch.save({"model": {}}, src)
    target = user_file(env, "dst")
    return expect_cli(env, ["convert", "samwise", "--src", str(src), "--preset", "samwise-tiny", "--dst",
                            str(target)], "dst", "is a file")


@case("convert")
def convert_videoglamm_missing_src(env: Env) -> Outcome:
    clip = env.tmp / "clip.bin"
    clip.write_bytes(b"")
    return expect_cli(env, ["convert", "videoglamm", "--src", str(env.tmp / "release"), "--clip", str(clip),
                            "--dst", str(env.tmp / "dst"), "--preset", "videoglamm-tiny"], "release")


@case("convert")
def convert_videoglamm_malformed_index(env: Env) -> Outcome:
    release = env.tmp / "release"
    release.mkdir()
    (release / "model.safetensors.index.json").write_text("{\"weight_map\": ")
    clip = env.tmp / "clip.bin"
    clip.write_bytes(b"")
    return expect_cli(env, ["convert", "videoglamm", "--src", str(release), "--clip", str(clip),
                            "--dst", str(env.tmp / "dst"), "--preset", "videoglamm-tiny"],
                      "model.safetensors.index.json")


@case("convert")
def convert_videoglamm_corrupt_clip(env: Env) -> Outcome:
    release = env.tmp / "release"
    release.mkdir()
    (release / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"model.embed_tokens.weight": "model-00001-of-00001.safetensors"}}))
    (release / "model-00001-of-00001.safetensors").write_bytes(os.urandom(64))
    clip = env.tmp / "clip.safetensors"
    clip.write_bytes(os.urandom(64))
    tokenizer = ROOT / "videoglamm" / "assets" / "tokenizers" / "videoglamm-tiny"
    return expect_cli(env, ["convert", "videoglamm", "--src", str(release), "--clip", str(clip), "--tokenizer",
                            str(tokenizer), "--dst", str(env.tmp / "dst"), "--preset", "videoglamm-tiny"],
                      "clip.safetensors")


@case("convert")
def convert_unknown_preset(env: Env) -> Outcome:
    import torch
    src = env.tmp / "release.pth"
    torch.save({"model": {}}, src)
    return expect_cli(env, ["convert", "samwise", "--src", str(src), "--preset", "samwise-huge", "--dst",
                            str(env.tmp / "dst")], "samwise-huge")


@case("export")
def export_missing_checkpoint(env: Env) -> Outcome:
    return expect_cli(env, ["export", "--checkpoint", str(env.tmp / "step_1"), "--out", str(env.tmp / "out")],
                      "step_1")


@case("export")
def export_empty_checkpoint_folder(env: Env) -> Outcome:
    (env.tmp / "step_1").mkdir()
    return expect_cli(env, ["export", "--checkpoint", str(env.tmp / "step_1"), "--out", str(env.tmp / "out")],
                      "step_1")


@case("export")
def export_corrupt_checkpoint_files(env: Env) -> Outcome:
    ckpt = env.tmp / "step_1"
    ckpt.mkdir()
    for name in ("config.json", "adapter.safetensors", "adapter_config.json", "trainer_state.json"):
        (ckpt / name).write_text("{")
    return expect_cli(env, ["export", "--checkpoint", str(ckpt), "--out", str(env.tmp / "out")], "step_1")


@case("synth")
def synth_videos_zero(env: Env) -> Outcome:
    return expect_cli(env, ["synth", "--out", str(env.tmp / "d"), "--videos", "0", "--seed", "0", "--no-progress"],
                      "--videos")


@case("synth")
def synth_frames_zero(env: Env) -> Outcome:
    return expect_cli(env, ["synth", "--out", str(env.tmp / "d"), "--videos", "1", "--seed", "0", "--frames", "0",
                            "--no-progress"], "--frames")


@case("synth")
def synth_size_too_small(env: Env) -> Outcome:
    return expect_cli(env, ["synth", "--out", str(env.tmp / "d"), "--videos", "1", "--seed", "0", "--size", "4x4",
                            "--no-progress"], "--size")


@case("synth")
def synth_size_malformed(env: Env) -> Outcome:
    return expect_cli(env, ["synth", "--out", str(env.tmp / "d"), "--videos", "1", "--seed", "0", "--size", "big"],
                      "--size")


@case("synth")
def synth_out_is_a_file(env: Env) -> Outcome:
    target = user_file(env)
    return expect_cli(env, ["synth", "--out", str(target), "--videos", "1", "--seed", "0", "--no-progress",
                            "--overwrite"], "notes.txt", "is a file")


@case("synth")
def synth_out_under_a_file(env: Env) -> Outcome:
    target = user_file(env)
    return expect_cli(env, ["synth", "--out", str(target / "d"), "--videos", "1", "--seed", "0",
                            "--no-progress"], "notes.txt", "not a folder")


# --------------------------------------------------------------------------- train/train.py

def _recipe(env: Env, **train: Any) -> Path:
    import yaml
    data = env.cache.get("train_data")
    if data is None:
        from videoglamm.data.synthetic_io import write_dataset
        data = write_dataset(env.tmp.parent / "train_data", 2, seed=5, num_frames=8, size=(48, 64), progress=False)
        env.cache["train_data"] = data
    recipe = {
        "model": {"preset": "videoglamm-tiny", "lora": False, "train_llm": True},
        "data": {"seed": 0, "datasets": [{"name": "rvos", "reader": "RefVOSReader", "constructor": "from_root",
                                          "args": {"root": str(data), "num_frames": 8}, "weight": 1}]},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "train": {"output_dir": str(env.tmp / "run"), "max_steps": 1, "micro_batch_size": 1, "log_every": 1,
                  "save_every": 100, "progress": False, **train},
    }
    path = env.tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@case("train")
def train_missing_config(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(env.tmp / "none.yaml")], "none.yaml", "does not exist")


@case("train")
def train_malformed_yaml(env: Env) -> Outcome:
    (env.tmp / "r.yaml").write_text("model: {preset: [unclosed\n")
    return expect_script(env, TRAIN, ["--config", str(env.tmp / "r.yaml")], "r.yaml", "YAML")


@case("train")
def train_override_without_equals(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(_recipe(env)), "train.max_steps"], "train.max_steps",
                         "key.path=value")


@case("train")
def train_max_steps_float(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(_recipe(env)), "train.max_steps=2.5"], "train.max_steps",
                         "integer")


@case("train")
def train_lora_string(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(_recipe(env)), "model.lora='no'"], "model.lora",
                         "true or false")


@case("train")
def train_lr_string(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(_recipe(env)), "optim.lr=fast"], "optim.lr", "number")


@case("train")
def train_unknown_key(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(_recipe(env)), "train.max_stepz=3"], "max_stepz")


@case("train")
def train_unknown_preset(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(_recipe(env)), "model.preset=videoglamm-huge"],
                         "videoglamm-huge")


@case("train")
def train_unknown_model_override(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(_recipe(env)), "model.overrides.lora.rank=8"], "rank")


@case("train")
def train_bad_data_root_leaves_no_run_folder(env: Env) -> Outcome:
    recipe = _recipe(env)
    return expect_script(env, TRAIN, ["--config", str(recipe), f"data.datasets.0.args.root={env.tmp / 'nodata'}"],
                         "nodata")


@case("train")
def train_bad_reader_name(env: Env) -> Outcome:
    recipe = _recipe(env)
    return expect_script(env, TRAIN, ["--config", str(recipe), "data.datasets.0.reader=NoSuchReader"],
                         "NoSuchReader")


@case("train")
def train_resume_missing_checkpoint(env: Env) -> Outcome:
    recipe = _recipe(env)
    return expect_script(env, TRAIN, ["--config", str(recipe), "--resume", str(env.tmp / "ckpt")], "ckpt")


@case("train")
def train_output_dir_is_a_file(env: Env) -> Outcome:
    blocker = user_file(env)
    recipe = _recipe(env)
    return expect_script(env, TRAIN, ["--config", str(recipe), f"train.output_dir={blocker}"], "notes.txt",
                         "is a file")


@case("train")
def train_samwise_recipe_bad_override(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(ROOT / "configs/train/samwise_tiny_synthetic.yaml"),
                                      "optim.steps=two"], "optim.steps")


# --------------------------------------------------------------------------- eval/ runners

def _runner(env: Env, script: str, argv: list[str], *fragments: str) -> Outcome:
    return expect_script(env, f"eval/{script}", [*argv, "--model", "videoglamm-tiny", "--out",
                                                 str(env.tmp / "out"), "--no-progress"], *fragments)


def _ytvos(env: Env) -> Path:
    import runner_fixtures as fx
    return fx.ref_ytvos(env.tmp)


@case("runner")
def runner_rvos_missing_root(env: Env) -> Outcome:
    return _runner(env, "rvos.py", ["--benchmark", "ref-ytvos", "--root", str(env.tmp / "noroot")], "noroot")


@case("runner")
def runner_rvos_malformed_meta(env: Env) -> Outcome:
    root = _ytvos(env)
    (root / "meta_expressions" / "valid" / "meta_expressions.json").write_text('{"videos": {"a": ')
    return _runner(env, "rvos.py", ["--benchmark", "ref-ytvos", "--root", str(root)], "meta_expressions.json",
                   "JSON")


@case("runner")
def runner_rvos_meta_missing_key(env: Env) -> Outcome:
    root = _ytvos(env)
    (root / "meta_expressions" / "valid" / "meta_expressions.json").write_text('{"videos": {"a": {"frames": []}}}')
    return _runner(env, "rvos.py", ["--benchmark", "ref-ytvos", "--root", str(root)], "meta_expressions.json",
                   "expressions")


@case("runner")
def runner_rvos_corrupt_frame(env: Env) -> Outcome:
    root = _ytvos(env)
    first = sorted((root / "valid" / "JPEGImages").iterdir())[0]
    frame = sorted(first.iterdir())[1]
    frame.write_bytes(b"\xff\xd8\xff not a jpeg")
    return _runner(env, "rvos.py", ["--benchmark", "ref-ytvos", "--root", str(root)], frame.name)


@case("runner")
def runner_rvos_device_cuda(env: Env) -> Outcome:
    import torch
    if torch.cuda.is_available():
        return Outcome("handled", "a GPU is present")
    root = _ytvos(env)
    return _runner(env, "rvos.py", ["--benchmark", "ref-ytvos", "--root", str(root), "--device", "cuda"], "cuda")


@case("runner")
def runner_rvos_num_frames_zero(env: Env) -> Outcome:
    root = _ytvos(env)
    return _runner(env, "rvos.py", ["--benchmark", "ref-ytvos", "--root", str(root), "--num-frames", "0"],
                   "num_frames")


@case("runner")
def runner_gcg_malformed_annotations(env: Env) -> Outcome:
    (env.tmp / "ann.json").write_text("[")
    (env.tmp / "frames").mkdir()
    return _runner(env, "gcg.py", ["--benchmark", "burst-ytvis-test", "--annotations", str(env.tmp / "ann.json"),
                                   "--root", str(env.tmp / "frames"), "--no-captions"], "ann.json")


@case("runner")
def runner_vg_annotations_missing_key(env: Env) -> Outcome:
    (env.tmp / "ann.json").write_text(json.dumps({"videos": [{"video_id": 0}]}))
    (env.tmp / "frames").mkdir()
    return _runner(env, "vg.py", ["--benchmark", "vidstg", "--annotations", str(env.tmp / "ann.json"),
                                  "--root", str(env.tmp / "frames")], "ann.json")


@case("runner")
def runner_vg_malformed_annotations(env: Env) -> Outcome:
    (env.tmp / "ann.json").write_text("{'videos': }")
    (env.tmp / "frames").mkdir()
    return _runner(env, "vg.py", ["--benchmark", "vidstg", "--annotations", str(env.tmp / "ann.json"),
                                  "--root", str(env.tmp / "frames")], "ann.json")


@case("runner")
def runner_eval_synthetic_bad_model(env: Env) -> Outcome:
    return expect_script(env, "eval/eval_synthetic.py", ["--model", str(env.tmp / "none"), "--videos", "1"],
                         "none")


@case("runner")
def runner_eval_synthetic_videos_zero(env: Env) -> Outcome:
    return expect_script(env, "eval/eval_synthetic.py", ["--videos", "0"], "--videos")


@case("runner")
def runner_out_is_a_file(env: Env) -> Outcome:
    root = _ytvos(env)
    blocker = user_file(env)
    return expect_script(env, "eval/rvos.py", ["--benchmark", "ref-ytvos", "--root", str(root), "--model",
                                               "videoglamm-tiny", "--out", str(blocker), "--no-progress"],
                         "notes.txt", "is a file")


# --------------------------------------------------------------------------- atomic writers

@case("writer")
def writer_atomic_dir_concurrent_commits(env: Env) -> Outcome:
    """Three threads committing to one folder 100 times each: every commit works, the result is one whole
    folder, and no temporary sibling is left."""
    from videoglamm.modeling.persistence import atomic_dir
    final = env.tmp / "shared"
    failures: list[str] = []

    def worker(n: int) -> None:
        for i in range(100):
            try:
                tmp, commit = atomic_dir(final)
                (tmp / "a.txt").write_text(f"{n}-{i}")
                (tmp / "b.txt").write_text(f"{n}-{i}")
                commit()
            except Exception as err:  # noqa: BLE001 - counted and reported
                failures.append(f"{type(err).__name__}: {err}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        return Outcome("traceback", f"{len(failures)} of 300 commits failed, e.g. {failures[0][:200]}")
    if (final / "a.txt").read_text() != (final / "b.txt").read_text():
        return Outcome("silent-wrong", "the final folder mixes two commits")
    left = sorted(p.name for p in env.tmp.iterdir() if p.name != "shared")
    return Outcome("partial-output", f"left {left[:5]}") if left else Outcome("handled")


@case("writer")
def writer_atomic_dir_onto_a_file(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    from videoglamm.modeling.persistence import atomic_dir
    target = user_file(env)
    return expect_error(env, lambda: atomic_dir(target), InputError, "notes.txt", "is a file")


@case("writer")
def writer_save_pretrained_onto_a_file(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    target = user_file(env)
    return expect_error(env, lambda: model(env).save_pretrained(target), InputError, "notes.txt", "is a file")


@case("writer")
def writer_failed_save_keeps_the_old_folder(env: Env) -> Outcome:
    """A save that fails half-way leaves the previous folder as it was and no temporary folder."""
    from safetensors import torch as st

    m = model(env)
    out = env.tmp / "saved"
    m.save_pretrained(out)
    before = snapshot(env.tmp)
    original = st.save_file

    def fail(*a: Any, **k: Any) -> None:
        raise OSError(28, "No space left on device")

    st.save_file = fail
    try:
        m.save_pretrained(out)
    except OSError:
        pass
    else:
        return Outcome("silent-wrong", "save did not fail")
    finally:
        st.save_file = original
    after = snapshot(env.tmp)
    return Outcome("partial-output", f"changed: {sorted(set(after) ^ set(before))[:5]}") if after != before \
        else Outcome("handled")


@case("writer")
def writer_json_under_a_file(env: Env) -> Outcome:
    from videoglamm.cli.score import write_json_atomic
    from videoglamm.errors import InputError
    blocker = user_file(env)
    return expect_error(env, lambda: write_json_atomic({}, blocker / "x.json"), InputError, "notes.txt",
                        "not a folder")


@case("writer")
def writer_json_onto_a_folder(env: Env) -> Outcome:
    from videoglamm.cli.score import write_json_atomic
    from videoglamm.errors import InputError
    (env.tmp / "result.json").mkdir()
    return expect_error(env, lambda: write_json_atomic({}, env.tmp / "result.json"), InputError, "result.json",
                        "is a folder")


@case("writer")
def writer_prediction_stale_temp_is_removed(env: Env) -> Outcome:
    """A temporary folder of a dead process is removed by the next successful write of the same folder."""
    from videoglamm.modeling.persistence import atomic_dir
    final = env.tmp / "out"
    code = ("import sys; from videoglamm.modeling.persistence import atomic_dir; from pathlib import Path; "
            "atomic_dir(Path(sys.argv[1]))")
    subprocess.run([sys.executable, "-c", code, str(final)], check=True, cwd=ROOT)
    tmp, commit = atomic_dir(final)
    (tmp / "x").write_text("1")
    commit()
    left = sorted(p.name for p in env.tmp.iterdir() if p.name != "out")
    return Outcome("partial-output", f"left {left}") if left else Outcome("handled")


@case("writer")
def writer_live_temp_of_another_process_is_kept(env: Env) -> Outcome:
    """Cleaning stale folders must not touch the temporary folder of a writer that is still running."""
    from videoglamm.modeling.persistence import atomic_dir
    final = env.tmp / "out"
    other, _ = atomic_dir(final)  # this process is alive: its folder is not stale
    tmp, commit = atomic_dir(final)
    commit()
    if not other.is_dir():
        return Outcome("silent-wrong", "a live writer's temporary folder was removed")
    shutil.rmtree(other)
    return Outcome("handled")


# --------------------------------------------------------------------------- dependencies, stderr

@case("deps")
def deps_predict_raises_no_deprecation_warning(env: Env) -> Outcome:
    m = model(env)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.predict(frames(env), "What is moving?", max_new_tokens=4)
    bad = [f"{w.category.__name__}: {w.message}" for w in caught
           if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    return Outcome("silent-wrong", f"{bad[:2]}") if bad else Outcome("handled")


@case("deps")
def deps_pyproject_declares_tested_ranges(env: Env) -> Outcome:
    import re
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for group in project["optional-dependencies"].values() for r in group
             if not r.startswith("videoglamm")]
    problems = []
    for req in reqs:
        ops = {s.operator for s in req.specifier}
        if not ({">=", ">"} & ops and {"<", "<="} & ops):
            problems.append(f"{req} lacks a lower or an upper bound")
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            continue
        if not req.specifier.contains(re.sub(r"\+.*", "", installed), prereleases=True):
            problems.append(f"installed {req.name} {installed} is outside {req.specifier}")
    return Outcome("silent-wrong", "; ".join(problems[:4])) if problems else Outcome("handled")


_PLAIN_PREDICT = """
import numpy as np
from videoglamm.data.synthetic import generate_video
from videoglamm.modeling.videoglamm import VideoGLaMM
model = VideoGLaMM.from_pretrained("videoglamm-tiny-synthetic").eval()
print(model.predict(generate_video(1, 0, num_frames=4, size=(48, 64)).frames, "What is moving?").text)
"""


def _stderr_of(cmd: list[str], progress_allowed: bool) -> Outcome:
    """Run `cmd`; its stderr must be empty, or hold only progress-bar lines when `progress_allowed`."""
    import re
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0:
        return Outcome("traceback", proc.stderr[-400:])
    lines = [line for line in re.split(r"[\r\n]", proc.stderr) if line.strip()]
    if progress_allowed:
        lines = [line for line in lines if not re.search(r"\d+%\|.*\|", line)]
    return Outcome("silent-wrong", f"stderr: {lines[:3]!r}") if lines else Outcome("handled")


@case("deps", slow=True)
def deps_plain_predict_stderr_is_empty(env: Env) -> Outcome:
    return _stderr_of([sys.executable, "-c", _PLAIN_PREDICT], progress_allowed=True)


@case("deps", slow=True)
def deps_cli_predict_no_progress_stderr_is_empty(env: Env) -> Outcome:
    from videoglamm.data.synthetic import generate_video
    from videoglamm.visualize import write_video
    video = env.tmp / "v.mp4"
    write_video(video, generate_video(1, 0, num_frames=4, size=(48, 64)).frames)
    return _stderr_of([sys.executable, "-m", "videoglamm", "predict", str(video), "What is moving?",
                       "--out", str(env.tmp / "out"), "--no-progress"], progress_allowed=False)


@case("entry", slow=True)
def entry_subprocess_cli_error_is_one_line(env: Env) -> Outcome:
    proc = subprocess.run([sys.executable, "-m", "videoglamm", "predict", str(env.tmp / "x.mp4"), "q", "--out",
                           str(env.tmp / "o")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("videoglamm predict: error:"):
        return Outcome("handled")
    return Outcome("traceback" if "Traceback" in proc.stderr else "unclear", f"exit {proc.returncode}: {lines[-3:]}")


@case("entry", slow=True)
def entry_subprocess_train_error_is_one_line(env: Env) -> Outcome:
    proc = subprocess.run([sys.executable, "train/train.py", "--config", str(env.tmp / "none.yaml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("train.py: error:"):
        return Outcome("handled")
    return Outcome("traceback" if "Traceback" in proc.stderr else "unclear", f"exit {proc.returncode}: {lines[-3:]}")


@case("entry", slow=True)
def entry_subprocess_runner_error_is_one_line(env: Env) -> Outcome:
    proc = subprocess.run([sys.executable, "eval/rvos.py", "--benchmark", "ref-ytvos", "--root",
                           str(env.tmp / "none"), "--model", "videoglamm-tiny", "--out", str(env.tmp / "o")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("rvos.py: error:"):
        return Outcome("handled")
    return Outcome("traceback" if "Traceback" in proc.stderr else "unclear", f"exit {proc.returncode}: {lines[-3:]}")
