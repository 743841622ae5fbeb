"""Frame sampling: which source frames each part of the model sees."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from videoglamm.errors import InputError

SAMPLING_MODES = ("uniform", "first", "all")


def sample_frame_indices(
    num_frames: int, count: int, mode: str = "uniform", indices: Sequence[int] | None = None
) -> list[int]:
    """Pick `count` frame indices out of a video of `num_frames` frames.

    Args:
        num_frames: frames in the video (>= 1).
        count: frames wanted. "uniform" and "first" return exactly `count` indices, repeating frames when
            the video is shorter (the encoders need a fixed number); "all" returns every frame.
        mode: "uniform" (evenly spaced from first to last frame, rounded), "first" (the first `count`,
            the last frame repeated if short) or "all".
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
        return [int(round(x)) for x in np.linspace(0, num_frames - 1, count)]
    if mode == "first":
        return [min(i, num_frames - 1) for i in range(count)]
    if mode == "all":
        return list(range(num_frames))
    raise InputError(f"unknown frame sampling {mode!r}; use one of {SAMPLING_MODES}")


def subsample(indices: Sequence[int], count: int) -> list[int]:
    """`count` entries of `indices`, evenly spaced (used to pick the SAM frames among the encoder frames)."""
    if count >= len(indices):
        return list(indices)
    picks = np.linspace(0, len(indices) - 1, count)
    return [int(indices[int(round(p))]) for p in picks]
