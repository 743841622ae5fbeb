"""COCO run-length encoded masks, decoded only where a caller looks.

A COCO RLE (`{"size": [H, W], "counts": ...}`) lists alternating background / foreground run lengths
over the pixels in column-major order, starting with background. `counts` is either that list or the
compressed string of `pycocotools.mask.encode` (6-bit characters, 5 payload bits each, a
continuation bit and a sign bit, and each count from the third on stored as the difference to the
count two places before it).

Scoring compares a GT mask with a prediction only inside the bounding box of their foreground, so
`RleMask` reads the box straight from the runs and fills just the requested window: no full-frame
decode (pycocotools writes every pixel of the frame one byte at a time) and no column-major to
row-major copy of the whole frame.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from videoglamm.errors import DatasetError

__all__ = ["rle_counts", "RleMask"]


def rle_counts(counts: str | bytes | Sequence[int]) -> np.ndarray:
    """Run lengths of a COCO RLE.

    Args:
        counts: the RLE's "counts": a compressed string (str or bytes) or the run lengths.

    Returns:
        (M,) int64 run lengths, background first.

    Raises:
        DatasetError: if a string is truncated (its last character asks for more) or a count is
            negative.
    """
    if not isinstance(counts, (str, bytes)):
        runs = np.asarray(counts, dtype=np.int64)
    else:
        raw = counts.encode("ascii") if isinstance(counts, str) else counts
        chars = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
        if chars.size and chars[-1] & 0x20:
            raise DatasetError(
                f"truncated COCO RLE string (ends with a continuation character): ...{raw[-20:]!r}"
            )
        # Each value is a little-endian group of 5-bit chunks; a chunk without bit 0x20 ends it.
        last = np.flatnonzero((chars & 0x20) == 0)
        first = np.zeros_like(last)
        first[1:] = last[:-1] + 1
        chunk = np.arange(chars.size) - np.repeat(first, last - first + 1)
        runs = np.add.reduceat((chars & 0x1F) << (5 * chunk), first) if chars.size else chars
        # Bit 0x10 of the last chunk is the sign: extend it over the higher bits.
        negative = (chars[last] & 0x10) != 0
        runs[negative] |= -1 << (5 * (chunk[last][negative] + 1))
        # From the third count on, the string holds the difference to the count two places back.
        runs[3::2] = np.cumsum(runs[1::2])[1:]
        runs[2::2] = np.cumsum(runs[2::2])
    if runs.size and runs.min() < 0:
        raise DatasetError("COCO RLE has a negative run length; the mask is corrupt")
    return runs


class RleMask:
    """One COCO RLE mask: its foreground box, and windows of it decoded on demand.

    Attributes:
        height, width: frame size.
        starts, stops: (N,) foreground runs [start, stop) as column-major pixel indices, in order.
    """

    def __init__(self, rle: dict[str, Any]) -> None:
        """Args:
            rle: {"size": [H, W], "counts": compressed string or run lengths}.

        Raises:
            DatasetError: if the run lengths add up to more than H * W.
        """
        self.height, self.width = (int(v) for v in rle["size"])
        runs = rle_counts(rle["counts"])
        ends = np.cumsum(runs)
        total = int(ends[-1]) if ends.size else 0
        # Runs that stop short leave background, as pycocotools decodes them; too many are an error.
        if total > self.height * self.width:
            raise DatasetError(
                f"COCO RLE runs cover {total} pixels but its size {self.height}x{self.width} (HxW) has "
                f"only {self.height * self.width}; the mask is corrupt"
            )
        # Foreground runs [start, end) in column-major pixel index; empty runs dropped.
        starts, stops = ends[0:-1:2], ends[1::2]
        keep = stops > starts
        self.starts, self.stops = starts[keep], stops[keep]

    @property
    def area(self) -> int:
        """Foreground pixel count."""
        return int((self.stops - self.starts).sum())

    def box(self) -> tuple[int, int, int, int] | None:
        """Rows and columns holding foreground, (y0, y1, x0, x1) inclusive, or None if empty.

        Exact: a run that continues into the next column covers the last row of one column and the
        first row of the next, so the box then spans every row.
        """
        if self.starts.size == 0:
            return None
        first_col, first_row = np.divmod(self.starts, self.height)
        last_col, last_row = np.divmod(self.stops - 1, self.height)
        if (first_col == last_col).all():
            y0, y1 = int(first_row.min()), int(last_row.max())
        else:
            y0, y1 = 0, self.height - 1
        return y0, y1, int(first_col.min()), int(last_col.max())

    def transposed_window(self, rows: slice, cols: slice) -> np.ndarray:
        """The mask inside a window, transposed (the RLE's own column-major order, so no pixel is
        moved), decoded from the runs that reach the window's columns.

        Args:
            rows, cols: slices with explicit, in-range start and stop (step 1).

        Returns:
            (len(cols), len(rows)) bool; rows of the result are contiguous. A fresh array: callers may
            write to it.
        """
        # Decode the full-height column block cols.start..cols.stop, then keep the rows.
        lo, hi = cols.start * self.height, cols.stop * self.height
        # (np.minimum / np.maximum: np.clip costs more in call overhead than in work on these sizes.)
        starts = np.maximum(np.minimum(self.starts, hi), lo) - lo
        stops = np.maximum(np.minimum(self.stops, hi), lo) - lo
        keep = stops > starts
        # Boundaries 0, start_0, stop_0, start_1, ..., n: background / foreground segments alternate.
        bounds = np.empty(2 * int(keep.sum()) + 2, dtype=np.int64)
        bounds[0], bounds[-1] = 0, hi - lo
        bounds[1:-1:2], bounds[2:-1:2] = starts[keep], stops[keep]
        values = np.zeros(bounds.size - 1, dtype=bool)
        values[1::2] = True
        block = np.repeat(values, np.diff(bounds)).reshape(cols.stop - cols.start, self.height)
        return block[:, rows]
