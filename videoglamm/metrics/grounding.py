"""Visual grounding (VidSTG / HC-STVG) as VideoGLaMM evaluates it: boxes derived from masks.

* Box from mask: foreground = value > 0, connected components (4-connectivity) smaller than 20 pixels
  removed (`skimage.remove_small_objects(min_size=20)`), then (x_min, y_min, x_max, y_max) over the
  remaining pixel indices, inclusive, no +1 (DETR `masks_to_boxes`). An empty mask has no box (NaN).
* Box IoU without +1 on areas (torchvision). An empty predicted box scores 0. Deviation: where the
  union is 0 (two identical degenerate boxes) we return 0, torchvision returns NaN.
* Per video: `gt_viou` = mean IoU over the sampled frames inside the GT tube; @0.3 / @0.5 are strict
  (`gt_viou > thr`). With a predicted time span, TubeDETR's tIoU over [start, end) spans and
  vIoU = sum of IoU over sampled frames in GT and predicted span / number of sampled frames in their
  union. Dataset numbers are means per question type ("mIoU" in the paper = interrogative gt_viou).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from videoglamm.errors import InputError

__all__ = ["masks_to_boxes", "box_iou", "VGSample", "score_vg_sample", "summarize_vg"]

MIN_OBJECT_SIZE = 20


def masks_to_boxes(masks: np.ndarray, min_size: int = MIN_OBJECT_SIZE) -> np.ndarray:
    """Boxes of masks after removing small connected components.

    Args:
        masks: (H, W) or (N, H, W); non-zero is foreground.
        min_size: components with fewer pixels are dropped (0 keeps everything).

    Returns:
        (4,) or (N, 4) float64 boxes (x_min, y_min, x_max, y_max); NaN rows for empty masks.
    """
    from scipy import ndimage

    arr = np.asarray(masks)
    single = arr.ndim == 2
    stack = arr[None] if single else arr
    boxes = np.full((len(stack), 4), np.nan)
    for i, m in enumerate(stack):
        fg = m > 0
        if min_size > 0 and fg.any():
            comp, _ = ndimage.label(fg)  # default structure = 4-connectivity, as skimage connectivity=1
            sizes = np.bincount(comp.ravel())
            keep = sizes >= min_size
            keep[0] = False
            fg = keep[comp]
        ys, xs = np.nonzero(fg)
        if ys.size:
            boxes[i] = (xs.min(), ys.min(), xs.max(), ys.max())
    return boxes[0] if single else boxes


def box_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray | float:
    """IoU of matching rows of two box arrays (x_min, y_min, x_max, y_max), no +1 on areas.

    Args:
        pred, gt: (4,) or (N, 4). NaN predicted boxes (empty masks) score 0.

    Returns:
        float or (N,) float64.
    """
    p, g = np.atleast_2d(np.asarray(pred, np.float64)), np.atleast_2d(np.asarray(gt, np.float64))
    if p.shape != g.shape:
        raise InputError(f"box arrays differ in shape: {p.shape} vs {g.shape}")
    wh = np.clip(np.minimum(p[:, 2:], g[:, 2:]) - np.maximum(p[:, :2], g[:, :2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    union = area(p) + area(g) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    iou = np.where(np.isnan(p).any(axis=1), 0.0, iou)
    return float(iou[0]) if np.ndim(pred) == 1 else iou


@dataclass
class VGSample:
    """One grounding query.

    Attributes:
        video_id: name used in reports.
        qtype: question type (e.g. "interrogative", "declarative").
        frame_ids: sampled frame ids.
        gt_boxes: frame id -> GT box, for the sampled frames inside the GT tube.
        pred_boxes: frame id -> predicted box (NaN or missing = no prediction).
        gt_span, pred_span: optional [start, end) frame spans for tIoU / vIoU.
    """

    video_id: str
    qtype: str
    frame_ids: Sequence[int]
    gt_boxes: dict[int, Sequence[float]]
    pred_boxes: dict[int, Sequence[float]]
    gt_span: tuple[int, int] | None = None
    pred_span: tuple[int, int] | None = None
    missing: list[int] = field(default_factory=list)


def score_vg_sample(sample: VGSample) -> dict[str, float]:
    """Per-video VG metrics.

    Returns:
        {"gt_viou", "gt_viou@0.3", "gt_viou@0.5"} plus {"tiou", "viou", "viou@0.3", "viou@0.5"} when
        both spans are given. Frames of the GT tube without a predicted box score 0 and are recorded
        in `sample.missing`.

    Raises:
        InputError: if the sample has no GT box.
    """
    tube = sorted(sample.gt_boxes)
    if not tube:
        raise InputError(f"{sample.video_id}: no GT boxes, the GT tube is empty")
    sample.missing = [f for f in tube if f not in sample.pred_boxes]
    nan_box = [np.nan] * 4
    preds = np.array([sample.pred_boxes.get(f, nan_box) for f in tube], dtype=np.float64)
    ious = dict(zip(tube, np.atleast_1d(box_iou(preds, np.array([sample.gt_boxes[f] for f in tube])))))
    gt_viou = float(np.mean(list(ious.values())))
    out = {"gt_viou": gt_viou, "gt_viou@0.3": float(gt_viou > 0.3), "gt_viou@0.5": float(gt_viou > 0.5)}
    if sample.gt_span is not None and sample.pred_span is not None:
        (gs, ge), (ps, pe) = sample.gt_span, sample.pred_span
        inter = min(ge, pe) - max(gs, ps)
        tiou = inter / ((ge - gs) + (pe - ps) - inter) if inter > 0 else 0.0
        lo, hi, both_lo, both_hi = min(gs, ps), max(ge, pe), max(gs, ps), min(ge, pe)
        union_frames = [f for f in sample.frame_ids if lo <= f < hi]
        viou = sum(v for f, v in ious.items() if both_lo <= f < both_hi) / max(len(union_frames), 1)
        out.update({"tiou": float(tiou), "viou": float(viou),
                    "viou@0.3": float(viou > 0.3), "viou@0.5": float(viou > 0.5)})
    return out


def summarize_vg(
    per_video: dict[str, dict[str, float]], qtypes: dict[str, str]
) -> dict[str, dict[str, float]]:
    """Means of every per-video metric per question type, plus "all".

    Args:
        per_video: video id -> output of `score_vg_sample`.
        qtypes: video id -> question type.

    Returns:
        qtype -> metric -> mean (metrics present in every video of that type), with "count".
    """
    groups: dict[str, list[str]] = {}
    for vid in per_video:
        groups.setdefault(qtypes[vid], []).append(vid)
    groups["all"] = list(per_video)
    out = {}
    for qtype, vids in groups.items():
        keys = set.intersection(*(set(per_video[v]) for v in vids)) if vids else set()
        out[qtype] = {k: float(np.mean([per_video[v][k] for v in vids])) for k in sorted(keys)}
        out[qtype]["count"] = len(vids)
    return out
