"""Scoring windows: the part of a frame on which J, F and the pixel counts of two binary masks equal
their full-frame values, and masks that hand out such windows without being converted whole.

A frame is scored from the box holding both masks' foreground, grown by one pixel on each side
(`scoring_window`). A mask only has to say where its foreground is (`box`) and produce a window of
itself (`transposed_window`): arrays (`ArrayMask`), COCO RLEs (`metrics.rle.RleMask`) and decoded
PNGs (`metrics.mask_io.PngMask`) all do, each in its cheapest way.

Windows come transposed, (columns, rows): the order a COCO RLE stores its pixels in. J, F and the
counts do not change under transposition (seg2bmap's east / south / south-east neighbours become
south / east / south-east, and the tolerance disk is symmetric), so no RLE pixel has to move.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from videoglamm.errors import ShapeMismatchError

__all__ = ["Box", "mask_box", "union_box", "scoring_window", "WindowMask", "ArrayMask"]

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), inclusive


def mask_box(mask: np.ndarray) -> Box | None:
    """Rows and columns holding non-zero pixels of an (H, W) mask, (y0, y1, x0, x1) inclusive, or None.

    Columns are searched only within the occupied rows; on unsigned and bool frames a `max`
    reduction (numpy's fastest full pass) finds the non-zero rows without a converted copy.
    """
    if mask.dtype.kind not in "bu":
        mask = mask != 0
    rows = np.flatnonzero(mask.max(axis=1)) if mask.size else np.empty(0, np.int64)
    if rows.size == 0:
        return None
    y0, y1 = int(rows[0]), int(rows[-1])
    cols = np.flatnonzero(mask[y0 : y1 + 1].max(axis=0))
    return y0, y1, int(cols[0]), int(cols[-1])


def union_box(*boxes: Box | None) -> Box | None:
    """Smallest (y0, y1, x0, x1) box holding every given box; None entries are skipped."""
    present = [b for b in boxes if b is not None]
    if not present:
        return None
    return (min(b[0] for b in present), max(b[1] for b in present),
            min(b[2] for b in present), max(b[3] for b in present))


def scoring_window(box: Box, height: int, width: int) -> tuple[slice, slice]:
    """Window of an (H, W) frame on which J, F and the counts equal their full-frame values.

    Args:
        box: (y0, y1, x0, x1) inclusive, holding every foreground pixel of both masks.
        height, width: frame size.

    Returns:
        (rows, cols) slices: the box plus one row above / column left (which seg2bmap can mark) and
        one row below / column right (background, so the last-row / last-column rule of seg2bmap
        changes nothing), clipped to the frame, where the frame edge keeps that rule itself.
    """
    y0, y1, x0, x1 = box
    return slice(max(y0 - 1, 0), min(y1 + 2, height)), slice(max(x0 - 1, 0), min(x1 + 2, width))


class WindowMask(Protocol):
    """A binary mask of an (height, width) frame, read only as far as scoring needs."""

    height: int
    width: int

    def box(self) -> Box | None:
        """(y0, y1, x0, x1) inclusive of the foreground, or None if the mask is empty."""
        ...

    def transposed_window(self, rows: slice, cols: slice) -> np.ndarray:
        """(len(cols), len(rows)) bool: the window, transposed; a fresh array the caller may write."""
        ...


class ArrayMask:
    """`WindowMask` over an (H, W) array; any non-zero value is foreground."""

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = np.asarray(mask)
        if self.mask.ndim != 2:
            raise ShapeMismatchError(f"a mask must be 2-D (H, W), got shape {self.mask.shape}")
        self.height, self.width = self.mask.shape

    def box(self) -> Box | None:
        return mask_box(self.mask)

    def transposed_window(self, rows: slice, cols: slice) -> np.ndarray:
        # != 0 and the transposition in one pass, into a row-contiguous result.
        out = np.empty((cols.stop - cols.start, rows.stop - rows.start), dtype=bool)
        return np.not_equal(self.mask[rows, cols].T, 0, out=out)
