"""MeViS protocol (`tools/eval_mevis.py`): J and F per expression over all frames, then plain means.

Per expression the GT is the union of its objects' masks in each frame and the prediction is any
non-zero pixel; J and F are means over *all* frames (no first/last frame drop, no void, no matching).
Dataset J and F are means over expressions and J&F = (J + F) / 2; papers print them x100.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from videoglamm.errors import InputError
from videoglamm.metrics.rvos import binary_scores

__all__ = ["ExpressionResult", "expression_scores", "summarize_mevis"]


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
