"""Dataset-level visual grounding scoring from disk (what `videoglamm score vg` runs).

GT file (`--gt gt.json`):

    {"<video>": {"qtype": "interrogative", "frames": [0, 5, 10, ...],
                 "boxes": {"<frame id>": [x_min, y_min, x_max, y_max], ...},   # sampled GT-tube frames
                 "span": [start, end]}}                                        # optional, [start, end)

Prediction (`--pred`), either a folder of masks or a JSON file of boxes:

    <pred>/<video>/<frame id, 5 digits>.png   mask; boxes come from `masks_to_boxes`
    <pred>/spans.json                         optional {"<video>": [start, end]}
    pred.json                                 {"<video>": {"boxes": {"<frame id>": [...]}, "span": [s, e]}}

A GT-tube frame without prediction scores IoU 0 and is listed in `missing_predictions` (the official
script raises).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from videoglamm.errors import DatasetError
from videoglamm.metrics.grounding import VGSample, masks_to_boxes, score_vg_sample, summarize_vg
from videoglamm.metrics.mask_io import read_mask_png

__all__ = ["evaluate_vg"]


def _pred_from_masks(root: Path, video: str, frames: list[int]) -> dict[int, list[float]]:
    boxes = {}
    for f in frames:
        path = root / video / f"{f:05d}.png"
        if path.is_file():
            box = masks_to_boxes(read_mask_png(path))
            boxes[f] = box.tolist()
    return boxes


def evaluate_vg(gt_path: str | os.PathLike, pred: str | os.PathLike) -> dict[str, Any]:
    """Scores VG predictions per question type.

    Args:
        gt_path: GT JSON file (layout above).
        pred: prediction folder of masks or JSON file of boxes.

    Returns:
        JSON-ready dict: `per_qtype` means (gt_viou, @0.3, @0.5 and, with spans, tiou, viou),
        `per_video`, `missing_predictions`.

    Raises:
        FileNotFoundError, DatasetError: bad inputs.
    """
    gt_path, pred = Path(gt_path), Path(pred)
    if not gt_path.is_file():
        raise FileNotFoundError(f"VG GT file not found: {gt_path}")
    if not pred.exists():
        raise FileNotFoundError(f"VG prediction not found: {pred}")
    from videoglamm.safe_io import read_json

    gt = read_json(gt_path, DatasetError, what="visual grounding GT")
    pred_json = read_json(pred, DatasetError, what="predictions") if pred.is_file() else None
    spans = {}
    if pred_json is None and (pred / "spans.json").is_file():
        spans = read_json(pred / "spans.json", DatasetError)
    per_video, qtypes, missing = {}, {}, []
    for video, entry in gt.items():
        if not isinstance(entry, dict):
            raise DatasetError(f"{gt_path}: entry {video!r} must be an object with qtype, frames, boxes")
        for key in ("qtype", "frames", "boxes"):
            if key not in entry:
                raise DatasetError(f"{gt_path}: video {video!r} has no {key!r}")
        gt_boxes = {int(f): b for f, b in entry["boxes"].items()}
        if pred_json is not None:
            p = pred_json.get(video, {})
            pred_boxes = {int(f): b for f, b in p.get("boxes", {}).items()}
            pred_span = p.get("span")
        else:
            pred_boxes = _pred_from_masks(pred, video, sorted(gt_boxes))
            pred_span = spans.get(video)
        sample = VGSample(video, entry["qtype"], entry["frames"], gt_boxes, pred_boxes,
                          tuple(entry["span"]) if "span" in entry else None,
                          tuple(pred_span) if pred_span is not None else None)
        per_video[video] = score_vg_sample(sample)
        qtypes[video] = entry["qtype"]
        missing.extend(f"{video}/{f:05d}" for f in sample.missing)
    return {"task": "vg", "per_qtype": summarize_vg(per_video, qtypes), "per_video": per_video,
            "missing_predictions": missing}
