"""Per-frame region similarity J and contour accuracy F (DAVIS definitions).

* J = |P & G| / |P | G| with void pixels excluded; 1 where the union is empty.
* F = 2PR / (P + R) of boundary precision and recall under a disk tolerance of
  ceil(0.008 x diagonal) pixels; both boundaries empty gives 1, exactly one empty gives 0.
  Void pixels are removed from both masks before their boundaries are taken.

`frame_scores` scores every (prediction, GT object) pair of one frame from two label maps at once; this
is what makes the unsupervised (Hungarian) protocol cheap. `jaccard` / `f_measure` are the familiar
binary-mask functions on (H, W) or (T, H, W) stacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from videoglamm.errors import ShapeMismatchError
from videoglamm.metrics.boundary import (
    DiskNeighbourhood,
    boundary_hits,
    boundary_radius,
    disk_half_widths,
    label_boundaries,
    seg2bmap,
)
from videoglamm.metrics.windows import scoring_window

__all__ = [
    "FrameScores", "frame_scores", "binary_scores", "jaccard", "f_measure", "jaccard_and_f", "f_from_counts",
    "boundary_half_widths", "binary_window_scores",
]


@dataclass(frozen=True)
class FrameScores:
    """Scores of every (prediction id, GT object) pair on one frame; arrays are (n_pred, n_gt).

    Attributes:
        j: region similarity J.
        f: contour accuracy F.
        intersection: |P & G| over non-void pixels.
        area_pred: (n_pred, 1) |P| over non-void pixels.
        area_gt: (1, n_gt) |G| over non-void pixels.
    """

    j: np.ndarray
    f: np.ndarray
    intersection: np.ndarray
    area_pred: np.ndarray
    area_gt: np.ndarray


@lru_cache(maxsize=16)
def _half_widths(radius: float) -> np.ndarray:
    return disk_half_widths(radius)


def _clean_labels(labels: np.ndarray, n_labels: int, void: np.ndarray | None) -> np.ndarray:
    """Labels outside 1..n_labels and void pixels become 0 (background of every mask)."""
    lab = np.asarray(labels)
    if lab.dtype == bool:
        return lab if void is None else lab & ~np.asarray(void).astype(bool)
    narrow = np.uint8 if n_labels < 256 else np.int64
    outside = lab > n_labels
    if lab.dtype.kind != "u":
        outside |= lab < 0
    out = np.where(outside, 0, lab).astype(narrow, copy=False)
    if void is not None:
        # Void pixels belong to no mask: excluded from J and zeroed before boundaries (official order).
        out[np.asarray(void).astype(bool)] = 0
    return out


def _occupied_crop(gt: np.ndarray, pred: np.ndarray) -> tuple[slice, slice] | None:
    """Window holding every labelled pixel plus the neighbours seg2bmap can mark (one row/column
    above and left, one below and right). Pixels outside it are background in both maps."""
    occupied = (gt | pred) if gt.dtype == bool and pred.dtype == bool else (gt != 0) | (pred != 0)
    rows = np.flatnonzero(occupied.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(occupied.any(axis=0))
    height, width = gt.shape
    return (
        slice(max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, height)),
        slice(max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, width)),
    )


def f_from_counts(
    n_pred: np.ndarray, n_gt: np.ndarray, pred_hits: np.ndarray, gt_hits: np.ndarray
) -> np.ndarray:
    """Boundary F-measure from boundary pixel counts, with the DAVIS empty-boundary rules.

    Args:
        n_pred, n_gt: boundary pixel counts of prediction and GT (broadcastable).
        pred_hits: predicted boundary pixels within tolerance of the GT boundary.
        gt_hits: GT boundary pixels within tolerance of the predicted boundary.

    Returns:
        float64 array of F values.
    """
    n_pred, n_gt = np.broadcast_arrays(np.asarray(n_pred, np.float64), np.asarray(n_gt, np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.asarray(pred_hits, np.float64) / n_pred
        recall = np.asarray(gt_hits, np.float64) / n_gt
    pred_empty, gt_empty = n_pred == 0, n_gt == 0
    precision = np.where(pred_empty, 1.0, np.where(gt_empty, 0.0, precision))
    recall = np.where(gt_empty, 1.0, np.where(pred_empty, 0.0, recall))
    total = precision + recall
    with np.errstate(divide="ignore", invalid="ignore"):
        f = 2 * precision * recall / total
    return np.where(total == 0, 0.0, f)


def frame_scores(
    gt_labels: np.ndarray,
    pred_labels: np.ndarray,
    n_gt: int,
    n_pred: int,
    void: np.ndarray | None = None,
    bound_th: float = 0.008,
    diagonal: bool = False,
) -> FrameScores:
    """J, F and pixel counts of every (prediction id, GT object id) pair on one frame.

    Args:
        gt_labels: (H, W) GT label map; object g is (gt_labels == g), g = 1..n_gt. Other values are
            background.
        pred_labels: (H, W) predicted label map; proposal k is (pred_labels == k), k = 1..n_pred.
        n_gt, n_pred: number of GT objects and predicted ids.
        void: optional (H, W) mask of pixels excluded from both measures.
        bound_th: F tolerance (fraction of the diagonal, or pixels when >= 1).
        diagonal: only pairs (k, k) are needed (semi-supervised task; requires n_pred == n_gt);
            F is NaN off the diagonal, which skips most boundary matching.

    Returns:
        The pair scores; J and F are float64 of shape (n_pred, n_gt).

    Raises:
        ShapeMismatchError: if the label maps (or the void mask) differ in shape.
    """
    gt_arr, pred_arr = np.asarray(gt_labels), np.asarray(pred_labels)
    if gt_arr.shape != pred_arr.shape or gt_arr.ndim != 2:
        raise ShapeMismatchError(
            f"GT frame has shape {gt_arr.shape} but the prediction has {pred_arr.shape}; "
            "both must be the same (H, W)"
        )
    if void is not None and np.shape(void) != gt_arr.shape:
        raise ShapeMismatchError(f"void mask has shape {np.shape(void)}, frames have {gt_arr.shape}")
    if diagonal and n_pred != n_gt:
        raise ValueError(f"diagonal scoring needs n_pred == n_gt, got {n_pred} and {n_gt}")
    radius = boundary_radius(*gt_arr.shape, bound_th=bound_th)
    window = _occupied_crop(gt_arr, pred_arr)
    if window is None:
        # Nothing labelled on either side: every pair is "both empty", J = F = 1.
        zeros = np.zeros((n_pred, n_gt), dtype=np.int64)
        return FrameScores(
            j=np.ones((n_pred, n_gt)), f=np.ones((n_pred, n_gt)), intersection=zeros,
            area_pred=np.zeros((n_pred, 1), np.int64), area_gt=np.zeros((1, n_gt), np.int64),
        )
    # Boundaries and counts are local, so working on the occupied window changes no value.
    gt = _clean_labels(gt_arr[window], n_gt, None if void is None else np.asarray(void)[window])
    pred = _clean_labels(pred_arr[window], n_pred, None if void is None else np.asarray(void)[window])

    if gt.dtype == bool and pred.dtype == bool:
        # Binary masks: four counts instead of a joint histogram.
        both = np.count_nonzero(gt & pred)
        n_g, n_p = np.count_nonzero(gt), np.count_nonzero(pred)
        hist = np.array([[gt.size - n_g - n_p + both, n_p - both], [n_g - both, both]], dtype=np.int64)
    else:
        key = gt.astype(np.int64) * (n_pred + 1) + pred
        hist = np.bincount(key.ravel(), minlength=(n_gt + 1) * (n_pred + 1))
        hist = hist.reshape(n_gt + 1, n_pred + 1)
    inter = hist[1:, 1:].T.astype(np.float64)
    area_gt = hist[1:, :].sum(axis=1)
    area_pred = hist[:, 1:].sum(axis=0)
    union = area_pred[:, None] + area_gt[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inter / union
    j[union == 0] = 1.0

    half_widths = _half_widths(radius)
    gt_b = label_boundaries(gt, n_gt, assume_clean=True)
    pred_b = label_boundaries(pred, n_pred, assume_clean=True)
    pred_hits = np.zeros((n_pred + 1, n_gt + 1), dtype=np.int64)
    gt_hits = np.zeros((n_pred + 1, n_gt + 1), dtype=np.int64)
    if diagonal:
        for k in np.flatnonzero(gt_b.counts * pred_b.counts):
            pred_hits[k, k], gt_hits[k, k] = boundary_hits(*gt_b.of(k), *pred_b.of(k), half_widths)
    else:
        # One neighbourhood per mask, queried with every boundary pixel of the other side at once.
        if pred_b.ys.size:
            for g in np.flatnonzero(gt_b.counts):
                inside = DiskNeighbourhood(*gt_b.of(g), half_widths).contains(pred_b.ys, pred_b.xs)
                pred_hits[:, g] = np.bincount(pred_b.labels[inside], minlength=n_pred + 1)
        if gt_b.ys.size:
            for k in np.flatnonzero(pred_b.counts):
                inside = DiskNeighbourhood(*pred_b.of(k), half_widths).contains(gt_b.ys, gt_b.xs)
                gt_hits[k, :] = np.bincount(gt_b.labels[inside], minlength=n_gt + 1)
    f = f_from_counts(
        pred_b.counts[1:, None], gt_b.counts[None, 1:], pred_hits[1:, 1:], gt_hits[1:, 1:]
    )
    if diagonal:
        f[~np.eye(n_gt, dtype=bool)] = np.nan
    return FrameScores(
        j=j, f=f, intersection=hist[1:, 1:].T.copy(),
        area_pred=area_pred[:, None], area_gt=area_gt[None, :],
    )


def _as_stack(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None):
    gt_arr, pred_arr = np.asarray(gt), np.asarray(pred)
    if gt_arr.shape != pred_arr.shape:
        raise ShapeMismatchError(f"GT masks have shape {gt_arr.shape} but predictions have {pred_arr.shape}")
    if gt_arr.ndim not in (2, 3):
        raise ShapeMismatchError(f"masks must be (H, W) or (T, H, W), got shape {gt_arr.shape}")
    if void is not None and np.shape(void) != gt_arr.shape:
        raise ShapeMismatchError(f"void mask has shape {np.shape(void)}, masks have {gt_arr.shape}")
    single = gt_arr.ndim == 2
    gt3 = gt_arr[None] if single else gt_arr
    pred3 = pred_arr[None] if single else pred_arr
    void3 = None if void is None else (np.asarray(void)[None] if single else np.asarray(void))
    return gt3, pred3, void3, single


def binary_scores(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame J, F and pixel counts of binary mask stacks.

    Args:
        gt, pred: (T, H, W); any non-zero value is foreground.
        void: optional (T, H, W) mask of ignored pixels.
        bound_th: F tolerance.

    Returns:
        (J, F, intersection, pred_area, gt_area), each (T,), counts over non-void pixels.

    Raises:
        ShapeMismatchError: if the shapes differ or are not 3-D.
    """
    gt3, pred3, void3, _ = _as_stack(gt, pred, void)
    n = len(gt3)
    js, fs = np.empty(n), np.empty(n)
    inter, area_p, area_g = (np.zeros(n, np.int64) for _ in range(3))
    gt3 = gt3 if gt3.dtype == bool else gt3 != 0
    if void3 is not None:
        keep = ~void3.astype(bool)
        gt3, pred3 = gt3 & keep, (pred3 != 0) & keep
    height, width = gt3.shape[1:]
    half_widths = boundary_half_widths(height, width, bound_th)
    # Occupied rows / columns of every frame in two passes over the stack, not two per frame. A
    # non-bool prediction is made bool per frame window below, not over whole frames here.
    occupied = np.logical_or(gt3, pred3)
    rows_any, cols_any = occupied.any(axis=2), occupied.any(axis=1)
    for t in range(n):
        rows, cols = np.flatnonzero(rows_any[t]), np.flatnonzero(cols_any[t])
        if rows.size == 0:
            js[t] = fs[t] = 1.0  # both empty
            continue
        window = scoring_window((int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])), height, width)
        p = pred3[t][window]
        scores = binary_window_scores(gt3[t][window], p if p.dtype == bool else p != 0, half_widths)
        js[t], fs[t], inter[t], area_p[t], area_g[t] = scores
    return js, fs, inter, area_p, area_g


def boundary_half_widths(height: int, width: int, bound_th: float = 0.008) -> np.ndarray:
    """The F tolerance disk of a frame size, as `disk_half_widths` rows (cached per radius)."""
    return _half_widths(boundary_radius(height, width, bound_th=bound_th))


def binary_window_scores(
    gt: np.ndarray, pred: np.ndarray, half_widths: np.ndarray
) -> tuple[float, float, int, int, int]:
    """J, F and counts of one frame from its `scoring_window`, with scalar arithmetic (the same IEEE
    operations as `frame_scores`, without its per-pair array bookkeeping).

    Args:
        gt, pred: (h, w) bool windows of the two masks.
        half_widths: the frame's tolerance disk (`boundary_half_widths` of the *full* frame size).

    Returns:
        (J, F, intersection, prediction area, GT area).
    """
    both = int(np.count_nonzero(gt & pred))
    n_g, n_p = int(np.count_nonzero(gt)), int(np.count_nonzero(pred))
    union = n_g + n_p - both
    j = both / union if union else 1.0
    width = gt.shape[1]
    gy, gx = np.divmod(np.flatnonzero(seg2bmap(gt)), width)
    py, px = np.divmod(np.flatnonzero(seg2bmap(pred)), width)
    if gy.size and py.size:
        pred_hits, gt_hits = boundary_hits(gy, gx, py, px, half_widths)
    else:
        pred_hits = gt_hits = 0
    return j, _f_scalar(py.size, gy.size, pred_hits, gt_hits), both, n_p, n_g


def _f_scalar(n_pred: int, n_gt: int, pred_hits: int, gt_hits: int) -> float:
    """`f_from_counts` for one pair in Python floats: the same IEEE double operations in the same
    order (so the same bits), without numpy's per-call overhead."""
    precision = 1.0 if n_pred == 0 else (0.0 if n_gt == 0 else pred_hits / n_pred)
    recall = 1.0 if n_gt == 0 else (0.0 if n_pred == 0 else gt_hits / n_gt)
    total = precision + recall
    return 0.0 if total == 0 else 2 * precision * recall / total


def jaccard_and_f(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Per-frame J and F of binary masks.

    Args:
        gt, pred: (H, W) or (T, H, W); any non-zero value is foreground.
        void: optional mask of the same shape; its pixels are ignored.
        bound_th: F tolerance.

    Returns:
        (J, F): floats for 2-D input, (T,) float64 arrays for 3-D input.

    Raises:
        ShapeMismatchError: if the shapes differ or are not 2-D/3-D.
    """
    single = np.ndim(gt) == 2
    js, fs, *_ = binary_scores(gt, pred, void, bound_th)
    return (float(js[0]), float(fs[0])) if single else (js, fs)


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> np.ndarray | float:
    """Per-frame region similarity J (IoU; 1 where the union is empty).

    Args:
        gt, pred: (H, W) or (T, H, W); any non-zero value is foreground.
        void: optional mask of the same shape; its pixels are ignored.

    Returns:
        float for 2-D input, (T,) float64 array for 3-D input.

    Raises:
        ShapeMismatchError: if the shapes differ.
    """
    gt3, pred3, void3, single = _as_stack(gt, pred, void)
    g, p = gt3.astype(bool), pred3.astype(bool)
    keep = np.ones_like(g) if void3 is None else ~void3.astype(bool)
    inter = np.sum(g & p & keep, axis=(-2, -1))
    union = np.sum((g | p) & keep, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inter / union
    j[union == 0] = 1.0
    return float(j[0]) if single else j


def f_measure(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> np.ndarray | float:
    """Per-frame contour accuracy F (see module docstring).

    Args:
        gt, pred: (H, W) or (T, H, W); any non-zero value is foreground.
        void: optional mask of the same shape; its pixels are ignored.
        bound_th: tolerance, fraction of the diagonal (or pixels when >= 1).

    Returns:
        float for 2-D input, (T,) float64 array for 3-D input.

    Raises:
        ShapeMismatchError: if the shapes differ.
    """
    return jaccard_and_f(gt, pred, void, bound_th)[1]
