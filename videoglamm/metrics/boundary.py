"""Boundary maps and disk-tolerance matching, the building blocks of the DAVIS contour measure F.

The definitions follow davis2017-evaluation (`_seg2bmap` + `cv2.dilate` with `skimage.morphology.disk`):

* a pixel is on the boundary of a mask when the mask differs between it and one of its east, south or
  south-east neighbours that lies inside the image (this is exactly the BSDS `seg2bmap` rule including
  its special last row / last column handling, so boundaries sit half a pixel towards the origin and a
  full-frame mask has no boundary);
* a boundary pixel "matches" the other boundary when some pixel of the other boundary lies at an offset
  (dy, dx) with dy^2 + dx^2 <= r^2, r = ceil(0.008 * frame diagonal), i.e. inside the disk dilation.

Instead of dilating full frames once per mask (the official cost), every label's boundary is extracted
in one pass over a label map, and disk membership is answered with row prefix sums on a crop around the
target boundary. All counts are integers, so the results are identical to the official ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "boundary_radius",
    "disk_half_widths",
    "seg2bmap",
    "LabelBoundaries",
    "label_boundaries",
    "DiskNeighbourhood",
    "boundary_hits",
]


def boundary_radius(height: int, width: int, bound_th: float = 0.008) -> float:
    """Tolerance radius in pixels, as DAVIS computes it.

    Args:
        height, width: frame size.
        bound_th: fraction of the diagonal when < 1, else an absolute radius in pixels.

    Returns:
        `bound_th` if it is >= 1, else ceil(bound_th * ||(height, width)||) (8 at 480x854).
    """
    if bound_th >= 1:
        return float(bound_th)
    # np.linalg.norm (not math.hypot) so the product rounds exactly like the official code.
    return float(np.ceil(bound_th * np.linalg.norm([height, width])))


def disk_half_widths(radius: float) -> np.ndarray:
    """Half-width of each row of the disk {(dy, dx): dy^2 + dx^2 <= radius^2}.

    Args:
        radius: disk radius (skimage `disk` semantics).

    Returns:
        int array of length 2R+1 (R = floor(radius)); entry i is the largest dx for dy = i - R.
    """
    reach = int(math.floor(radius))
    r2 = radius * radius
    widths = []
    for dy in range(-reach, reach + 1):
        dx = math.isqrt(int(math.floor(r2 - dy * dy)))
        widths.append(dx)
    return np.asarray(widths, dtype=np.int64)


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary map of a binary mask (BSDS `seg2bmap` semantics, no resizing).

    Args:
        mask: (..., H, W) array; any non-zero value is foreground.

    Returns:
        bool array of the same shape (C-contiguous).
    """
    seg = np.asarray(mask)
    if seg.dtype != bool:
        seg = seg.astype(bool)
    out = np.empty(seg.shape, dtype=bool)
    if seg.shape[-1] == 0 or seg.shape[-2] == 0:
        return out
    # Only neighbours inside the image count: this reproduces the last-row / last-column rule.
    east = seg[..., :, :-1] ^ seg[..., :, 1:]
    south = seg[..., :-1, :] ^ seg[..., 1:, :]
    # Where a pixel equals its south neighbour, differing from the south-east one is the same as the
    # south neighbour differing from its east one: SE needs no comparison of its own.
    inner = out[..., :-1, :-1]
    np.logical_or(east[..., :-1, :], east[..., 1:, :], out=inner)
    inner |= south[..., :, :-1]
    out[..., -1, :-1] = east[..., -1, :]
    out[..., :-1, -1] = south[..., :, -1]
    out[..., -1, -1] = False
    return out


@dataclass(frozen=True)
class LabelBoundaries:
    """Boundary pixels of every label 1..n_labels of one label map.

    Attributes:
        ys, xs: (N,) coordinates of (pixel, label) boundary memberships, grouped by label (each
            membership once; order within a label is unspecified).
        labels: (N,) label of each entry.
        counts: (n_labels + 1,) number of boundary pixels per label (index 0 unused, always 0).
        starts: (n_labels + 2,) offsets so label k occupies entries starts[k]:starts[k + 1].
    """

    ys: np.ndarray
    xs: np.ndarray
    labels: np.ndarray
    counts: np.ndarray
    starts: np.ndarray

    def of(self, label: int) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates (ys, xs) of the boundary of one label."""
        lo, hi = self.starts[label], self.starts[label + 1]
        return self.ys[lo:hi], self.xs[lo:hi]


def label_boundaries(labels: np.ndarray, n_labels: int, *, assume_clean: bool = False) -> LabelBoundaries:
    """Boundary maps of the masks (labels == k), k = 1..n_labels, in one pass over the frame.

    A pixel x with label a is on the boundary of mask a when some in-image E/S/SE neighbour has another
    label, and on the boundary of mask b != a when such a neighbour has label b. Labels outside
    1..n_labels are background for every mask.

    Args:
        labels: (H, W) integer label map.
        n_labels: number of masks.
        assume_clean: the caller guarantees every value is in 0..n_labels (skips one pass).

    Returns:
        The boundary pixels of every mask.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"label map must be 2-D (H, W), got shape {lab.shape}")
    height, width = lab.shape
    height, width = lab.shape
    if n_labels == 1:
        # Single mask (the MeViS / binary case): a plain seg2bmap is cheaper than label bookkeeping.
        ys, xs = np.divmod(np.flatnonzero(seg2bmap(lab == 1)), width)
        counts = np.array([0, ys.size], dtype=np.int64)
        starts = np.array([0, 0, ys.size], dtype=np.int64)
        return LabelBoundaries(ys=ys, xs=xs, labels=np.ones(ys.size, np.int64), counts=counts, starts=starts)
    if lab.dtype == bool:
        lab = lab.view(np.uint8)
    if not assume_clean:
        # Keep the narrow input dtype: the full-frame comparisons dominate the cost.
        lab = np.where((lab > n_labels) | (lab < 0), 0, lab)
    any_diff = np.zeros((height, width), dtype=bool)
    any_diff[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    any_diff[:-1, :] |= lab[:-1, :] != lab[1:, :]
    any_diff[:-1, :-1] |= lab[:-1, :-1] != lab[1:, 1:]
    flat = lab.ravel()
    idx = np.flatnonzero(any_diff)
    own = flat[idx]
    ys, xs = np.divmod(idx, width)
    has_east = xs < width - 1
    has_south = ys < height - 1
    last = flat.size - 1
    # Neighbours outside the image take the pixel's own label, so they never count as a difference.
    east = np.where(has_east, flat[np.minimum(idx + 1, last)], own)
    south = np.where(has_south, flat[np.minimum(idx + width, last)], own)
    south_east = np.where(has_east & has_south, flat[np.minimum(idx + width + 1, last)], own)
    # Each (pixel, label) membership is emitted once: a neighbour's label only when it differs from
    # the pixel's own label and from the labels of the neighbours listed before it.
    take_east = east != own
    take_south = (south != own) & (south != east)
    take_se = (south_east != own) & (south_east != east) & (south_east != south)
    all_idx = np.concatenate([idx, idx[take_east], idx[take_south], idx[take_se]])
    all_lab = np.concatenate([own, east[take_east], south[take_south], south_east[take_se]])
    keep = all_lab > 0
    all_idx, all_lab = all_idx[keep], all_lab[keep]
    order = np.argsort(all_lab, kind="stable")
    member_lab, member_idx = all_lab[order], all_idx[order]
    counts = np.bincount(member_lab, minlength=n_labels + 1)
    starts = np.zeros(n_labels + 2, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    my, mx = np.divmod(member_idx, width)
    return LabelBoundaries(ys=my, xs=mx, labels=member_lab, counts=counts, starts=starts)


class DiskNeighbourhood:
    """Answers "is point p within the disk tolerance of this boundary?" for many points at once.

    Equivalent to looking p up in the disk dilation of the boundary map, but built from row prefix
    sums on a crop around the boundary, so its cost scales with the object, not the frame.
    """

    def __init__(self, ys: np.ndarray, xs: np.ndarray, half_widths: np.ndarray) -> None:
        """Args:
        ys, xs: (N,) boundary pixel coordinates, N >= 1.
        half_widths: output of `disk_half_widths`.
        """
        self.half_widths = half_widths
        self.reach = (len(half_widths) - 1) // 2
        # The crop keeps `reach` pixels of margin beyond the reachable zone so every lookup stays inside.
        pad = 2 * self.reach
        self.y0 = int(ys.min()) - pad
        self.x0 = int(xs.min()) - pad
        h = int(ys.max()) - self.y0 + 1 + pad
        w = int(xs.max()) - self.x0 + 1 + pad
        grid = np.zeros((h, w + 1), dtype=bool)
        grid[ys - self.y0, xs - self.x0 + 1] = True
        # Flat row prefix sums: the count of boundary pixels in row y, columns a..b, is
        # prefix[y * (w + 1) + b + 1] - prefix[y * (w + 1) + a]. (A bool -> int32 cumsum is an
        # order of magnitude faster in numpy than an int32 -> int32 one along the last axis.)
        self.prefix = np.cumsum(grid, axis=1, dtype=np.int32).ravel()
        self.height, self.width = h, w
        dys = np.arange(len(half_widths), dtype=np.int64) - self.reach
        self._row_offsets = (dys * (w + 1))[:, None]
        self._hi = (half_widths + 1)[:, None]
        self._lo = half_widths[:, None]

    def contains(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Args:
            ys, xs: (M,) query coordinates.

        Returns:
            (M,) bool, True where a boundary pixel lies within the disk around the query point.
        """
        r = self.reach
        ry = ys - self.y0
        rx = xs - self.x0
        inside = (ry >= r) & (ry < self.height - r) & (rx >= r) & (rx < self.width - r)
        out = np.zeros(ys.shape, dtype=bool)
        sel = np.flatnonzero(inside)
        if sel.size == 0:
            return out
        base = ry[sel] * (self.width + 1) + rx[sel]
        # One gather per disk row for all points at once: (2R+1, M) index arrays.
        rows = self._row_offsets + base[None, :]
        hit = np.take(self.prefix, rows + self._hi) > np.take(self.prefix, rows - self._lo)
        out[sel] = hit.any(axis=0)
        return out


@lru_cache(maxsize=16)
def _disk_rows(half_widths: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Disk rows (dy, half width) ordered by |dy|: most queries hit near the centre and stop early."""
    reach = (len(half_widths) - 1) // 2
    dys = np.arange(len(half_widths), dtype=np.int64) - reach
    order = np.argsort(np.abs(dys), kind="stable")
    return dys[order], np.asarray(half_widths, dtype=np.int64)[order]


def boundary_hits(
    gy: np.ndarray, gx: np.ndarray, py: np.ndarray, px: np.ndarray, half_widths: np.ndarray
) -> tuple[int, int]:
    """Matched boundary pixels of one frame in both directions, from one prefix-sum grid.

    Equal to `DiskNeighbourhood(g).contains(p).sum()` and `DiskNeighbourhood(p).contains(g).sum()`
    with half the grid work: both boundaries are drawn in one window (the bounding box of both, plus
    the disk reach R) as cell values 1 (GT) and 2**s (prediction), s such that 2**s > 2R + 1. A
    difference of row prefix sums over a segment of at most 2R + 1 cells is then
    2**s * (#prediction pixels) + (#GT pixels) of that segment, and the two counts never mix. Every
    query is a boundary pixel inside the window, at least R from its edges, so no segment looked up
    crosses a window row. (On huge windows the int32 prefix sums may wrap around; differences of
    them are still exact, being true sums below 2**31 taken modulo 2**32.)

    Args:
        gy, gx: GT boundary pixels (non-empty, each once, any order).
        py, px: predicted boundary pixels (non-empty, each once, any order).
        half_widths: output of `disk_half_widths`.

    Returns:
        (prediction pixels near the GT boundary, GT pixels near the predicted boundary).
    """
    reach = (len(half_widths) - 1) // 2
    g_y0, g_y1, g_x0, g_x1 = int(gy.min()), int(gy.max()), int(gx.min()), int(gx.max())
    p_y0, p_y1, p_x0, p_x1 = int(py.min()), int(py.max()), int(px.min()), int(px.max())
    y0, x0 = min(g_y0, p_y0) - reach, min(g_x0, p_x0) - reach
    height = max(g_y1, p_y1) + reach + 1 - y0
    width = max(g_x1, p_x1) + reach + 1 - x0
    shift = int(2 * reach + 1).bit_length()
    dtype = np.int32 if 2 * shift <= 30 else np.int64
    g_cell = (gy - y0) * width + (gx - x0)
    p_cell = (py - y0) * width + (px - x0)
    # prefix[k] = sum of the first k cells; a segment sum is a difference of two entries. The cells
    # are drawn shifted by one and summed in place: one window-sized buffer, not two (allocating and
    # first touching the second cost more than the sum itself).
    prefix = np.zeros(height * width + 1, dtype=dtype)
    prefix[g_cell + 1] = 1
    prefix[p_cell + 1] += 1 << shift
    np.cumsum(prefix, out=prefix)
    # A query farther than R from the other side's box cannot hit: it is not looked up.
    p_near = (py >= g_y0 - reach) & (py <= g_y1 + reach) & (px >= g_x0 - reach) & (px <= g_x1 + reach)
    g_near = (gy >= p_y0 - reach) & (gy <= p_y1 + reach) & (gx >= p_x0 - reach) & (gx <= p_x1 + reach)
    p_base, g_base = p_cell[p_near], g_cell[g_near]
    base = np.concatenate([p_base, g_base])
    # Prediction pixels read the GT field (low bits), GT pixels the prediction field (high bits).
    field = np.full(base.size, -(1 << shift), dtype=dtype)
    field[: p_base.size] = (1 << shift) - 1
    is_pred = np.zeros(base.size, dtype=bool)
    is_pred[: p_base.size] = True
    dys, half = _disk_rows(tuple(int(h) for h in half_widths))
    hi_off = (dys * width + half + 1)[:, None]
    lo_off = (dys * width - half)[:, None]
    pred_hits = gt_hits = 0
    for g_lo, g_hi in ((0, 1), (1, len(dys))):
        if base.size == 0:
            break
        # One gather per disk row for all remaining queries: (rows, M) index arrays.
        seg = np.take(prefix, base + hi_off[g_lo:g_hi]) - np.take(prefix, base + lo_off[g_lo:g_hi])
        found = ((seg & field) != 0).any(axis=0)
        n_found = int(np.count_nonzero(found))
        n_pred_found = int(np.count_nonzero(found & is_pred))
        pred_hits += n_pred_found
        gt_hits += n_found - n_pred_found
        if g_hi < len(dys):
            missed = ~found
            base, field, is_pred = base[missed], field[missed], is_pred[missed]
    return pred_hits, gt_hits
