"""Frame index selection. Always returns sorted, distinct indices (temporal order is never shuffled)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def uniform_indices(length: int, num_frames: int | None) -> list[int]:
    """`num_frames` indices spread evenly over `range(length)`, first and last included.

    Args:
        length: number of frames in the video (>= 1).
        num_frames: how many to keep; None, or more than `length`, keeps every frame once
            (padding to a fixed count is the processor's job, not the reader's).

    Returns:
        Sorted distinct indices.
    """
    if length < 1:
        raise ValueError(f"a video needs at least one frame, got length {length}")
    if num_frames is None or num_frames >= length:
        return list(range(length))
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1 or None, got {num_frames}")
    if num_frames == 1:
        return [(length - 1) // 2]
    # floor(x + 0.5) instead of np.round: banker's rounding can merge neighbours when the step is 1.
    grid = np.floor(np.linspace(0, length - 1, num_frames) + 0.5).astype(int)
    return [int(i) for i in grid]


def covering_indices(length: int, num_frames: int | None, required: Sequence[Sequence[int]]) -> list[int]:
    """Uniform indices that also contain at least one frame from each group in `required`.

    Each group lists the frames where one object is present. A group the uniform grid misses gets its
    middle frame swapped in for the nearest grid frame no other group needs, so the count stays
    `num_frames` unless there are more groups than frames.

    Args:
        length: number of frames in the video.
        num_frames: target count (None keeps every frame).
        required: per object, the (non-empty) frame indices it may be shown in.

    Returns:
        Sorted distinct indices.
    """
    chosen = uniform_indices(length, num_frames)
    if num_frames is None or num_frames >= length:
        return chosen
    result = list(chosen)
    pinned: set[int] = set()
    for group in required:
        group = sorted(int(i) for i in group)
        if not group:
            continue
        hit = set(group) & set(result)
        if hit:
            pinned.add(min(hit))
            continue
        middle = group[len(group) // 2]
        # Swap in the object's middle frame for the nearest grid frame nobody else needs.
        free = [i for i in result if i not in pinned]
        if free:
            result.remove(min(free, key=lambda i: abs(i - middle)))
        result.append(middle)
        pinned.add(middle)
    return sorted(set(result))
