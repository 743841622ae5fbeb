"""J&F of trained tiny SAMWISE models on a held-out synthetic split, by expression kind.

    python eval/eval_samwise_synthetic.py MODEL_DIR [MODEL_DIR ...] [--num-videos 24] [--seed 1000]

Each model folder is one `save_pretrained` output (e.g. with and without adapters from
`train/train_samwise.py`). For every (video, expression) pair the model streams the video; J is the
region IoU, F the boundary F-measure (DAVIS-style, boundary tolerance 0.008 of the diagonal), both
averaged over frames, then over expressions of each kind. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def region_j(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """IoU of two bool (H, W) masks; 1 when both are empty."""
    union = (pred | gt).sum().item()
    return 1.0 if union == 0 else (pred & gt).sum().item() / union


def _boundary(mask: torch.Tensor) -> torch.Tensor:
    m = mask.float()[None, None]
    eroded = -F.max_pool2d(-m, 3, stride=1, padding=1)
    return (m - eroded)[0, 0] > 0


def boundary_f(pred: torch.Tensor, gt: torch.Tensor, bound_th: float = 0.008) -> float:
    """Boundary F-measure of two bool (H, W) masks with a tolerance of `bound_th` x the image diagonal."""
    radius = max(1, math.ceil(bound_th * math.hypot(*pred.shape)))
    bp, bg = _boundary(pred), _boundary(gt)
    if bp.sum() == 0 and bg.sum() == 0:
        return 1.0
    if bp.sum() == 0 or bg.sum() == 0:
        return 0.0

    def dilate(b: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(b.float()[None, None], 2 * radius + 1, stride=1, padding=radius)[0, 0] > 0

    precision = (bp & dilate(bg)).sum().item() / bp.sum().item()
    recall = (bg & dilate(bp)).sum().item() / bg.sum().item()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def evaluate(model_dir: Path, num_videos: int, seed: int, num_frames: int, size: tuple[int, int]) -> dict[str, tuple[float, float, int]]:
    """Per kind (and "all"): (mean J, mean F, number of expressions)."""
    from videoglamm.data.synthetic import generate_videos
    from videoglamm.samwise.model import SAMWISE

    model = SAMWISE.from_pretrained(model_dir).eval()
    scores: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for video in generate_videos(num_videos, seed, num_frames=num_frames, size=size):
        expressions = video.expressions
        results = model.predict(video.frames, [e["exp"] for e in expressions])
        for exp, result in zip(expressions, results):
            gt = torch.from_numpy(video.object_masks(int(exp["obj_id"])))
            pred = result.masks[0]
            j = float(np.mean([region_j(p, g) for p, g in zip(pred, gt)]))
            f = float(np.mean([boundary_f(p, g) for p, g in zip(pred, gt)]))
            scores[exp["kind"]].append((j, f))
            scores["all"].append((j, f))
    return {k: (float(np.mean([s[0] for s in v])), float(np.mean([s[1] for s in v])), len(v)) for k, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--num-videos", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1000, help="held out: training uses seed 0")
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=(48, 64))
    args = parser.parse_args()
    print("| model | kind | J&F | J | F | expressions |\n|---|---|---|---|---|---|")
    for model_dir in args.models:
        table = evaluate(model_dir, args.num_videos, args.seed, args.num_frames, tuple(args.size))
        for kind in ("appearance", "motion", "time", "all"):
            if kind in table:
                j, f, n = table[kind]
                print(f"| {model_dir} | {kind} | {100 * (j + f) / 2:.1f} | {100 * j:.1f} | {100 * f:.1f} | {n} |", flush=True)


if __name__ == "__main__":
    main()
