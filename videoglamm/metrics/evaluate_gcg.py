"""Dataset-level GCG scoring from disk (what `videoglamm score gcg` runs).

Layout (the same for `--gt` and `--pred`):

    <root>/gcg.json                    {"<video>": {"caption": str, "phrases": [str, ...]}}
    <root>/<video>/<k>/<frame>.png     mask of object k (0-based index into "phrases");
                                       any non-zero pixel is foreground

Object k pairs with phrase k on both sides. The frames of a video are the union of the PNG names of
its GT objects (a GT object without a frame is empty there). A predicted object's missing frame is an
empty mask and is listed in `missing_predictions`. Videos present in the GT but absent from the
prediction's gcg.json are scored with no objects and an empty caption (listed in `missing_videos`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from videoglamm.errors import DatasetError
from videoglamm.metrics.gcg import (
    NamedEncoder, TextEncoder, ap50, greedy_miou, greedy_recall_matches, iou_matrix, phrase_similarity,
    resolve_text_encoder,
)
from videoglamm.metrics.mask_io import read_frames

__all__ = ["evaluate_gcg"]


def _load_index(root: Path) -> dict[str, Any]:
    path = root / "gcg.json"
    if not path.is_file():
        raise FileNotFoundError(f"GCG index not found: {path}")
    from videoglamm.safe_io import read_json

    index = read_json(path, DatasetError, what="a GCG index")
    for video, entry in index.items():
        if not isinstance(entry, dict) or "phrases" not in entry or "caption" not in entry:
            raise DatasetError(f"{path}: entry {video!r} needs 'caption' and 'phrases'")
    return index


def _gt_frames(root: Path, video: str, n_objects: int) -> list[str]:
    names = set()
    for k in range(n_objects):
        folder = root / video / str(k)
        if not folder.is_dir():
            raise FileNotFoundError(f"GT mask folder not found: {folder}")
        names.update(p.stem for p in folder.glob("*.png"))
    if not names:
        raise DatasetError(f"{root / video}: GT objects hold no .png frames")
    return sorted(names)


def evaluate_gcg(
    gt_root: str | os.PathLike,
    pred_root: str | os.PathLike,
    text_encoder: TextEncoder | None = None,
    encoder_name: str = "custom",
    captions: bool = True,
    clair_judge: Callable[[str, Sequence[str]], float] | None = None,
    prefer_bert: bool = True,
) -> dict[str, Any]:
    """Scores GCG predictions: mIoU, recall, AP50 and caption metrics.

    Args:
        gt_root, pred_root: folders in the layout above.
        text_encoder: used for recall when the local bert-base-uncased is unavailable.
        encoder_name: name reported for `text_encoder`.
        captions: also compute BLEU/METEOR/ROUGE-L/CIDEr (needs Java).
        clair_judge: optional CLAIR judge (candidate, references) -> [0, 1].
        prefer_bert: try the local bert-base-uncased first (the official encoder).

    Returns:
        JSON-ready dict; `recall` is None (with `recall_encoder` None) when no encoder is available.

    Raises:
        FileNotFoundError, DatasetError, ShapeMismatchError: bad inputs.
    """
    from videoglamm.errors import CheckpointError

    gt_root, pred_root = Path(gt_root), Path(pred_root)
    gt_index, pred_index = _load_index(gt_root), _load_index(pred_root)
    try:
        encoder: NamedEncoder | None = resolve_text_encoder(text_encoder, encoder_name, prefer_bert)
    except CheckpointError:
        encoder = None
    per_video, samples, missing = {}, [], []
    matches_total, phrases_total = 0, 0
    missing_videos = [v for v in gt_index if v not in pred_index]
    for video, gt_entry in gt_index.items():
        pred_entry = pred_index.get(video, {"caption": "", "phrases": []})
        frames = _gt_frames(gt_root, video, len(gt_entry["phrases"]))
        gts = [read_frames([gt_root / video / str(k) / f"{f}.png" for f in frames], allow_missing=True)[0]
               for k in range(len(gt_entry["phrases"]))]
        shape = gts[0].shape[1:] if gts else None
        preds = []
        for k in range(len(pred_entry["phrases"])):
            stack, miss = read_frames([pred_root / video / str(k) / f"{f}.png" for f in frames],
                                      shape=shape, allow_missing=True)
            preds.append(stack)
            missing.extend(os.path.relpath(m, pred_root) for m in miss)
        ious = iou_matrix(preds, gts)
        entry = {"mIoU": greedy_miou(ious), "gt_phrases": len(gts), "pred_objects": len(preds)}
        phrases_total += len(gts)
        if encoder is not None:
            sim = phrase_similarity(encoder, gt_entry["phrases"], pred_entry["phrases"])
            entry["matches"] = greedy_recall_matches(ious.T, sim)
            matches_total += entry["matches"]
        per_video[video] = entry
        samples.append((preds, gts))
    result: dict[str, Any] = {
        "task": "gcg",
        "mIoU": float(np.mean([v["mIoU"] for v in per_video.values()])) if per_video else None,
        "recall": matches_total / phrases_total if encoder is not None and phrases_total else None,
        "recall_encoder": encoder.name if encoder is not None else None,
        "AP50": ap50(samples),
    }
    refs = {v: [e["caption"]] for v, e in gt_index.items()}
    preds_text = {v: pred_index.get(v, {"caption": ""})["caption"] for v in gt_index}
    if captions:
        from videoglamm.metrics.captions import caption_scores

        result["captions"] = caption_scores(refs, preds_text).corpus
    if clair_judge is not None:
        from videoglamm.metrics.gcg import clair

        result["CLAIR"] = clair(refs, preds_text, clair_judge)
    result.update({"per_video": per_video, "missing_videos": missing_videos, "missing_predictions": missing})
    return result
