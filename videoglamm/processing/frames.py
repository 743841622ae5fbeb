"""Frame sampling: which source frames each part of the model sees."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from videoglamm.errors import InputError

SAMPLING_MODES = ("uniform", "spread", "first", "all")


def sample_frame_indices(
    num_frames: int, count: int, mode: str = "uniform", indices: Sequence[int] | None = None
) -> list[int]:
    """Pick `count` frame indices out of a video of `num_frames` frames.

    Args:
        num_frames: frames in the video (>= 1).
        count: frames wanted. "uniform", "spread" and "first" return exactly `count` indices, repeating
            frames when the video is shorter (the encoders need a fixed number); "all" returns every frame.
        mode: "uniform" (the official rule: `np.linspace(0, T-1, count, dtype=int)`, i.e. truncated, when the
            video is longer; otherwise every frame, then the last one repeated), "spread" (rounded
            linspace: a short video's repeats are spread over it), "first" (the first `count`, the last
            frame repeated if short) or "all".
        indices: explicit indices; overrides `mode` and is validated against `num_frames`.

    Returns:
        Sorted list of indices in [0, num_frames).

    Raises:
        InputError: for an empty video, an unknown mode or out-of-range explicit indices.
    """
    if num_frames < 1:
        raise InputError("the video has no frames")
    if indices is not None:
        out = [int(i) for i in indices]
        bad = [i for i in out if not 0 <= i < num_frames]
        if bad or not out:
            raise InputError(f"frame indices {bad or out} are outside the video's {num_frames} frames")
        return sorted(out)
    if mode == "uniform":
        if num_frames > count:
            return [int(i) for i in np.linspace(0, num_frames - 1, count, dtype=int)]
        return list(range(num_frames)) + [num_frames - 1] * (count - num_frames)
    if mode == "spread":
        return [int(round(x)) for x in np.linspace(0, num_frames - 1, count)]
    if mode == "first":
        return [min(i, num_frames - 1) for i in range(count)]
    if mode == "all":
        return list(range(num_frames))
    raise InputError(f"unknown frame sampling {mode!r}; use one of {SAMPLING_MODES}")


def subsample(indices: Sequence[int], count: int, mode: str = "uniform") -> list[int]:
    """`count` of the encoder frames `indices` for SAM2 (the training mask frames).

    "uniform" (official): `np.linspace(0, n-1, count, dtype=int)` over the n distinct frames, so a short
    clip gives repeated frames, as the official training does. Otherwise: `count` evenly spaced entries
    (rounded), or all of them when there are no more than `count`.
    """
    if mode == "uniform":
        distinct = sorted(set(int(i) for i in indices))
        return [distinct[int(p)] for p in np.linspace(0, len(distinct) - 1, count, dtype=int)]
    if count >= len(indices):
        return list(indices)
    picks = np.linspace(0, len(indices) - 1, count)
    return [int(indices[int(round(p))]) for p in picks]


def decoded_frame_pool(num_frames: int, fps: float | None, sample_fps: float | None,
                       max_frames: int | None) -> list[int]:
    """The frames of a video file the encoders choose from, as the official demo reads a file.

    The official reader keeps every `round(fps / sample_fps)`-th frame from frame 0 (1 fps by default),
    then, when more than `max_frames` remain, `np.linspace(0, n-1, max_frames, dtype=int)` of them.

    Args:
        num_frames: frames in the file.
        fps: the file's frame rate (None or <= 0 when unknown: every frame is kept).
        sample_fps: the decoding rate (None: every frame).
        max_frames: the cap (None: no cap).

    Returns:
        Sorted source frame indices.
    """
    stride = 1
    if sample_fps and fps and fps > 0:
        stride = max(1, int(round(float(fps) / sample_fps)))
    pool = list(range(0, num_frames, stride))
    if max_frames is not None and len(pool) > max_frames:
        pool = [pool[int(i)] for i in np.linspace(0, len(pool) - 1, max_frames, dtype=int)]
    return pool
