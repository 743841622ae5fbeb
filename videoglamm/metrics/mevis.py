"""MeViS protocol (`tools/eval_mevis.py`): J and F per expression over all frames, then plain means.

Per expression the GT is the union of its objects' masks in each frame and the prediction is any
non-zero pixel; J and F are means over *all* frames (no first/last frame drop, no void, no matching).
Dataset J and F are means over expressions and J&F = (J + F) / 2; papers print them x100.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest
from typing import Iterable, Sequence

import numpy as np

from videoglamm.errors import InputError, ShapeMismatchError
from videoglamm.metrics.rvos import binary_scores, binary_window_scores, boundary_half_widths
from videoglamm.metrics.windows import ArrayMask, WindowMask, scoring_window, union_box

__all__ = ["ExpressionResult", "expression_scores", "windowed_expression_scores", "summarize_mevis"]

_END = object()


@dataclass(frozen=True)
class ExpressionResult:
    """Scores of one expression.

    Attributes:
        j, f: (T,) per-frame values.
        intersection, union, pred_area: pixel counts summed over frames.
    """

    j: np.ndarray
    f: np.ndarray
    intersection: int
    union: int
    pred_area: int

    @property
    def gt_area(self) -> int:
        return self.union - self.pred_area + self.intersection

    @property
    def j_mean(self) -> float:
        return float(np.mean(self.j))

    @property
    def f_mean(self) -> float:
        return float(np.mean(self.f))


def expression_scores(gt: np.ndarray, pred: np.ndarray, bound_th: float = 0.008) -> ExpressionResult:
    """Scores one expression.

    Args:
        gt: (T, H, W) GT masks (union of the referred objects); non-zero is foreground.
        pred: (T, H, W) predicted masks; non-zero is foreground.
        bound_th: F tolerance.

    Returns:
        The per-frame values and pixel counts.

    Raises:
        ShapeMismatchError: if the shapes differ.
    """
    j, f, inter, pred_area, gt_area = binary_scores(gt, pred, None, bound_th)
    i, p = int(inter.sum()), int(pred_area.sum())
    return ExpressionResult(j, f, i, p + int(gt_area.sum()) - i, p)


def windowed_expression_scores(
    gt: Iterable[Sequence[WindowMask]],
    pred: Iterable[WindowMask | np.ndarray | None],
    size: tuple[int, int],
    bound_th: float = 0.008,
) -> ExpressionResult:
    """Scores one expression frame by frame; equal to `expression_scores` on the dense stacks.

    Each frame is compared only inside the `scoring_window` of both masks' foreground: the masks
    report their boxes and produce just that window (see `metrics.windows`), so an RLE is never
    decoded and a PNG never converted as a whole frame.

    Args:
        gt: per frame, the masks of the referred objects present in it (the GT is their union), e.g.
            `RleMask`s.
        pred: per frame, the predicted mask: a `WindowMask`, an (H, W) array (non-zero is foreground)
            or None for an empty mask.
        size: (H, W) frame size.
        bound_th: F tolerance.

    Returns:
        The per-frame values and pixel counts.

    Raises:
        ShapeMismatchError: if a mask is not (H, W), or `gt` and `pred` differ in length.
    """
    height, width = size
    half_widths = boundary_half_widths(height, width, bound_th)
    js, fs, inter, pred_area, gt_area = [], [], 0, 0, 0
    for t, (masks, mask) in enumerate(zip_longest(gt, pred, fillvalue=_END)):
        if masks is _END or mask is _END:
            raise ShapeMismatchError(f"GT and prediction frame counts differ (frame {t} has only one side)")
        if isinstance(mask, np.ndarray):
            mask = ArrayMask(mask)
        sides = [("GT", m) for m in masks] + ([] if mask is None else [("prediction", mask)])
        for side, m in sides:
            if (m.height, m.width) != (height, width):
                raise ShapeMismatchError(
                    f"frame {t}: {side} mask is {m.width}x{m.height} (WxH), frames are {width}x{height}"
                )
        box = union_box(*(m.box() for m in masks), None if mask is None else mask.box())
        if box is None:  # both empty
            js.append(1.0)
            fs.append(1.0)
            continue
        rows, cols = scoring_window(box, height, width)
        window_shape = (cols.stop - cols.start, rows.stop - rows.start)  # transposed
        gt_window = masks[0].transposed_window(rows, cols) if masks else np.zeros(window_shape, dtype=bool)
        for m in masks[1:]:
            gt_window |= m.transposed_window(rows, cols)
        if mask is None:
            pred_window = np.zeros(window_shape, dtype=bool)
        else:
            pred_window = mask.transposed_window(rows, cols)
        # Transposed windows: J, F and the counts are the same (see `metrics.windows`).
        j, f, both, n_p, n_g = binary_window_scores(gt_window, pred_window, half_widths)
        js.append(j)
        fs.append(f)
        inter, pred_area, gt_area = inter + both, pred_area + n_p, gt_area + n_g
    return ExpressionResult(np.asarray(js, dtype=np.float64), np.asarray(fs, dtype=np.float64),
                            inter, pred_area + gt_area - inter, pred_area)


def summarize_mevis(results: dict[str, ExpressionResult]) -> dict[str, float]:
    """Dataset J, F and J&F as means over expressions.

    Args:
        results: expression name (`<video>_<exp_id>`) -> scores.

    Returns:
        {"J": ..., "F": ..., "J&F": ...} in [0, 1].

    Raises:
        InputError: if `results` is empty.
    """
    if not results:
        raise InputError("no expressions to summarize")
    j = float(np.mean([r.j_mean for r in results.values()]))
    f = float(np.mean([r.f_mean for r in results.values()]))
    return {"J": j, "F": f, "J&F": (j + f) / 2}
