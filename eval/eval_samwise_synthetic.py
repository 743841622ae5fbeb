"""J&F of trained tiny SAMWISE models on a held-out synthetic split, by expression kind.

    python eval/eval_samwise_synthetic.py MODEL_DIR [MODEL_DIR ...] [--num-videos 40] [--seed 1000]

Each model folder is one `save_pretrained` output (e.g. with and without adapters from
`train/train_samwise.py`). For every (video, expression) pair the model streams the video; J and F are
the DAVIS per-frame definitions from `videoglamm.metrics.jaccard_and_f` (region IoU and boundary
F-measure; an empty prediction on an empty ground truth scores 1), averaged over frames, then over the
expressions of each kind; J&F is their mean. Prints a markdown table (and writes JSON with --out).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def evaluate(model_dir: Path, num_videos: int, seed: int, num_frames: int, size: tuple[int, int],
             suppress_absent: bool | None = None) -> dict[str, tuple[float, float, int]]:
    """Per kind (and "all"): (mean J, mean F, number of expressions).

    `suppress_absent` overrides the model's `inference.suppress_absent` when not None (for models saved
    before that field existed).
    """
    from videoglamm.data.synthetic import generate_videos
    from videoglamm.metrics import jaccard_and_f
    from videoglamm.samwise.model import SAMWISE

    model = SAMWISE.from_pretrained(model_dir).eval()
    if suppress_absent is not None:
        model.config.inference.suppress_absent = suppress_absent
    scores: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for video in generate_videos(num_videos, seed, num_frames=num_frames, size=size):
        expressions = video.expressions
        results = model.predict(video.frames, [e["exp"] for e in expressions])
        for exp, result in zip(expressions, results):
            gt = video.object_masks(int(exp["obj_id"]))
            js, fs = jaccard_and_f(gt, result.masks[0].numpy().astype(bool))
            j, f = float(np.mean(js)), float(np.mean(fs))
            scores[exp["kind"]].append((j, f))
            scores["all"].append((j, f))
    return {k: (float(np.mean([s[0] for s in v])), float(np.mean([s[1] for s in v])), len(v)) for k, v in scores.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--num-videos", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1000, help="held out: training uses seed 0")
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=(96, 128), help="H W (the recipe trains on 96 128)")
    parser.add_argument("--out", type=Path, default=None, help="write {model: {kind: [J, F, n]}} as JSON here")
    parser.add_argument("--no-suppress-absent", action="store_true",
                        help="keep masks whose SAM2 object score is <= 0 (a SAM2 without a trained score head)")
    args = parser.parse_args(argv)
    tables = {}
    print("| model | kind | J&F | J | F | expressions |\n|---|---|---|---|---|---|")
    for model_dir in args.models:
        table = evaluate(model_dir, args.num_videos, args.seed, args.num_frames, tuple(args.size),
                         False if args.no_suppress_absent else None)
        tables[str(model_dir)] = table
        for kind in ("appearance", "motion", "time", "all"):
            if kind in table:
                j, f, n = table[kind]
                print(f"| {model_dir} | {kind} | {100 * (j + f) / 2:.1f} | {100 * j:.1f} | {100 * f:.1f} | {n} |", flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(tables, indent=1) + "\n")


if __name__ == "__main__":
    from videoglamm.cli.entry import run_script

    sys.exit(run_script("eval_samwise_synthetic.py", main))
