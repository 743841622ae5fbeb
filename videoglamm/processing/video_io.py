"""Turning whatever a user passes as a video into uint8 frames (T, H, W, 3).

A video is a file path (read with decord), a folder of frame images (the benchmarks' layout, read in
name order), a list of image paths or PIL images, or a uint8 array/tensor (T, H, W, 3).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence, Union

import numpy as np
import torch

from videoglamm.errors import InputError, ShapeMismatchError, VideoReadError
from videoglamm.processing.frame_folder import FrameFolder

VideoLike = Union[str, os.PathLike, Sequence[Any], np.ndarray, torch.Tensor]


class VideoFile:
    """A video file opened with decord; frames are decoded on demand.

    Raises:
        VideoReadError: when the file is missing, not a video, or has no decodable frames.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoReadError(f"video file not found: {self.path}")
        import decord

        try:
            self._reader = decord.VideoReader(str(self.path), num_threads=1)
        except (RuntimeError, decord.DECORDError) as err:  # what decord raises for a container it cannot open
            raise VideoReadError(f"cannot read video {self.path}: {err}. Is it a complete, valid video file?") from err
        if len(self._reader) == 0:
            raise VideoReadError(f"video {self.path} has no decodable frames")

    def __len__(self) -> int:
        return len(self._reader)

    @property
    def fps(self) -> float:
        return float(self._reader.get_avg_fps())

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames at `indices` as uint8 (len(indices), H, W, 3)."""
        import decord

        try:
            batch = self._reader.get_batch(list(indices)).asnumpy()
        except (RuntimeError, decord.DECORDError) as err:
            raise VideoReadError(f"cannot decode frames {list(indices)[:8]}... of {self.path}: {err}") from err
        return torch.from_numpy(batch)

    def iter_frames(self, chunk: int = 16) -> Iterator[torch.Tensor]:
        """Yield frames one at a time (uint8 (H, W, 3)), decoding `chunk` frames per call."""
        for start in range(0, len(self), chunk):
            batch = self.get(range(start, min(start + chunk, len(self))))
            yield from batch


def read_images(paths: Sequence[str | os.PathLike]) -> torch.Tensor:
    """Image files -> uint8 (T, H, W, 3), in the order given.

    Raises:
        VideoReadError: a file is missing or not a readable image (the message names it).
        ShapeMismatchError: the images differ in size.
    """
    from PIL import Image, UnidentifiedImageError

    arrays = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise VideoReadError(f"frame image not found: {path}")
        try:
            with Image.open(path) as img:
                arrays.append(np.asarray(img.convert("RGB")))
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise VideoReadError(f"cannot read frame image {path}: {err}; is it a complete image file?") from None
    if not arrays:
        raise VideoReadError("no frame images given")
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:
        odd = next(p for p, a in zip(paths, arrays) if a.shape != arrays[0].shape)
        raise ShapeMismatchError(f"frame images differ in size ({sorted(sizes)[:4]}), e.g. {odd} vs {paths[0]}; "
                                 "resize them to one size first")
    return torch.from_numpy(np.stack(arrays))


def read_frame_folder(folder: str | os.PathLike) -> torch.Tensor:
    """Every image in `folder` (see `FrameFolder`), sorted by name, as uint8 (T, H, W, 3).

    Raises:
        VideoReadError: the folder holds no image, or an image cannot be read.
        ShapeMismatchError: the images differ in size.
    """
    frames = FrameFolder(folder)
    return frames.get(range(len(frames)))


def as_frames(video: VideoLike) -> torch.Tensor:
    """Any supported video input -> uint8 tensor (T, H, W, 3), T >= 1, all frames one size.

    Raises:
        InputError: zero frames, wrong dtype or layout.
        ShapeMismatchError: frames of mixed sizes.
        VideoReadError: an unreadable file.
    """
    if isinstance(video, (str, os.PathLike)):
        if Path(video).is_dir():
            return read_frame_folder(video)
        reader = VideoFile(video)
        return reader.get(range(len(reader)))
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(video)
    if isinstance(video, torch.Tensor):
        return _check_array(video)
    if isinstance(video, Sequence):
        if len(video) == 0:
            raise InputError("the video has zero frames")
        if all(isinstance(frame, (str, os.PathLike)) for frame in video):
            return _check_array(read_images(video))
        arrays = [np.asarray(frame.convert("RGB") if hasattr(frame, "convert") else frame) for frame in video]
        sizes = sorted({a.shape for a in arrays})
        if len(sizes) > 1:
            raise ShapeMismatchError(f"frames have mixed sizes {sizes[:4]}; resize them to one size first")
        return _check_array(torch.from_numpy(np.stack(arrays)))
    raise InputError(f"unsupported video type {type(video).__name__}: pass a path, PIL images or a (T,H,W,3) uint8 array")


def _check_array(frames: torch.Tensor) -> torch.Tensor:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"video array must be (T, H, W, 3), got shape {tuple(frames.shape)}")
    if frames.shape[0] == 0:
        raise InputError("the video has zero frames")
    if frames.dtype != torch.uint8:
        raise InputError(f"video array must be uint8, got {frames.dtype}")
    return frames
