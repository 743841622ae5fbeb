"""What the bad-input cases share: the shipped model, tiny videos and frame folders, copies of model
folders to corrupt, a pickle that must never be unpickled."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from bad_input_corpus import Env

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
