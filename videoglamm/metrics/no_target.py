"""False-positive-aware metrics in the GRES / gRefCOCO sense (ReLA `refer_evaluation.py`).

A sample is one referring target: a GT object (DAVIS) or an expression (MeViS), with pixel counts
summed over its scored frames. "No target" is the positive class:

* GT empty: predicted empty is a TP (IoU 1, adds nothing to the cumulative I and U); otherwise a FN
  (IoU 0, the predicted area is added to the cumulative U).
* GT non-empty: predicted empty is a FP (I forced to 0, U kept); otherwise a TN. IoU = I / U
  (0 when U = 0).

N-acc = TP / (TP + FN), T-acc = TN / (TN + FP), gIoU = mean IoU over samples, cIoU = sum I / sum U.
GRES prints these x100; here they are fractions in [0, 1] like the J&F numbers they sit next to.
A ratio with an empty denominator is None (no no-target samples means N-acc is undefined).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

__all__ = ["NoTargetSample", "no_target_metrics"]


@dataclass(frozen=True)
class NoTargetSample:
    """Pixel counts of one sample over its frames.

    Attributes:
        intersection: |P & G|.
        union: |P | G|.
        gt_empty: the GT has no pixel in any frame (a no-target sample).
        pred_empty: the model says "no target" (by default: the prediction has no pixel).
    """

    intersection: int
    union: int
    gt_empty: bool
    pred_empty: bool


def no_target_metrics(samples: Iterable[NoTargetSample]) -> dict[str, float | int | None]:
    """N-acc, T-acc, gIoU and cIoU over samples.

    Args:
        samples: one entry per target (object or expression).

    Returns:
        {"N-acc", "T-acc", "gIoU", "cIoU", "no_target_samples", "target_samples"}; ratios are None
        when their denominator is 0.
    """
    tp = fn = fp = tn = 0
    iou_sum, cum_i, cum_u, n = 0.0, 0, 0, 0
    for s in samples:
        n += 1
        if s.gt_empty:
            if s.pred_empty:
                tp += 1
                iou_sum += 1.0
            else:
                fn += 1
                cum_u += s.union
            continue
        inter = 0 if s.pred_empty else s.intersection
        if s.pred_empty:
            fp += 1
        else:
            tn += 1
        iou_sum += inter / s.union if s.union else 0.0
        cum_i += inter
        cum_u += s.union
    return {
        "N-acc": tp / (tp + fn) if tp + fn else None,
        "T-acc": tn / (tn + fp) if tn + fp else None,
        "gIoU": iou_sum / n if n else None,
        "cIoU": cum_i / cum_u if cum_u else None,
        "no_target_samples": tp + fn,
        "target_samples": tn + fp,
    }
