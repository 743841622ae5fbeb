"""Evaluation metrics as pure functions over numpy arrays.

Submodules (import the one you need; this package imports none of them eagerly, so
`import videoglamm.metrics` stays cheap):

* `rvos`: per-frame J and F (DAVIS definitions); `boundary`: seg2bmap and disk matching.
* `davis`: DAVIS statistics and the semi-supervised / unsupervised (Hungarian) protocols.
* `mevis`: MeViS per-expression protocol.
* `no_target`: false-positive-aware N-acc, T-acc, gIoU, cIoU (GRES definitions).
* `captions`: BLEU-1..4, METEOR, ROUGE-L, CIDEr through pycocoevalcap.
* `gcg`: grounded conversation generation (mIoU, recall, AP50, CLAIR hook).
* `grounding`: visual grounding box IoU, tIoU and vIoU.
* `mask_io`: reading mask PNGs and the MeViS / DAVIS folder layouts.
* `evaluate_rvos`, `evaluate_gcg`, `evaluate_vg`: dataset scoring from folders (the `score` CLI).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "jaccard": "videoglamm.metrics.rvos",
    "f_measure": "videoglamm.metrics.rvos",
    "jaccard_and_f": "videoglamm.metrics.rvos",
    "frame_scores": "videoglamm.metrics.rvos",
    "db_statistics": "videoglamm.metrics.davis",
    "semi_supervised_sequence": "videoglamm.metrics.davis",
    "unsupervised_sequence": "videoglamm.metrics.davis",
    "summarize_davis": "videoglamm.metrics.davis",
    "expression_scores": "videoglamm.metrics.mevis",
    "summarize_mevis": "videoglamm.metrics.mevis",
    "no_target_metrics": "videoglamm.metrics.no_target",
    "caption_scores": "videoglamm.metrics.captions",
    "greedy_miou": "videoglamm.metrics.gcg",
    "masks_to_boxes": "videoglamm.metrics.grounding",
    "box_iou": "videoglamm.metrics.grounding",
    "evaluate_rvos": "videoglamm.metrics.evaluate_rvos",
    "evaluate_gcg": "videoglamm.metrics.evaluate_gcg",
    "evaluate_vg": "videoglamm.metrics.evaluate_vg",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'videoglamm.metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = list(_LAZY)
