"""Held-out evaluation of a model trained on the synthetic shapes (the shipped `videoglamm-tiny-synthetic`).

    python eval/eval_synthetic.py [--model videoglamm-tiny-synthetic] [--videos 60] [--seed 1000]

Videos come from `generate_video(seed, i)` with a seed the training set did not use. Every referring
expression of every video is asked with one fixed question; the first `[SEG]`'s mask track is scored
against the object's ground truth on every frame. A GCG question per video checks the number of
`[SEG]`s against the number of objects. Prints one table per expression kind (appearance / motion /
time) and writes the numbers as JSON.

J and F are the DAVIS per-frame definitions from `videoglamm.metrics.jaccard_and_f` (an empty
prediction on an empty ground truth scores 1), averaged over the video's frames, then over the
expressions of a kind; J&F is their mean (MeViS / Ref-YTVOS convention).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUESTION = "Can you segment {phrase} in this video?"


def evaluate(model, num_videos: int, seed: int, num_frames: int, mask_mode: str,
             progress: bool = True) -> dict:
    """Score `model` on `num_videos` held-out synthetic videos; returns per-kind and overall numbers."""
    from tqdm import tqdm

    from videoglamm.data.synthetic import generate_video
    from videoglamm.data.templates import GCG_QUESTIONS
    from videoglamm.metrics import jaccard_and_f

    per_kind: dict[str, list[tuple[float, float]]] = defaultdict(list)
    seg_ok: dict[str, list[bool]] = defaultdict(list)
    for index in tqdm(range(num_videos), desc="eval videos", disable=not progress):
        video = generate_video(seed, index, num_frames=num_frames)
        prompts = [QUESTION.format(phrase=e["exp"]) for e in video.expressions] + [GCG_QUESTIONS[0]]
        results = model.predict(video.frames, prompts, mask_mode=mask_mode, max_new_tokens=64)
        for exp, result in zip(video.expressions, results[:-1]):
            kind = exp["kind"]
            seg_ok[kind].append(len(result.masks) == 1)
            gt = video.object_masks(int(exp["obj_id"]))
            pred = result.masks[0].numpy().astype(bool) if result.masks else np.zeros_like(gt)
            j, f = jaccard_and_f(gt, pred)
            per_kind[kind].append((float(np.mean(j)), float(np.mean(f))))
        seg_ok["gcg"].append(len(results[-1].masks) == len(video.objects))
    def row(scores: list[tuple[float, float]], oks: list[bool]) -> dict:
        j, f = (float(np.mean([s[i] for s in scores])) for i in (0, 1))
        return {"expressions": len(scores), "J": j, "F": f, "J&F": (j + f) / 2,
                "seg_count_acc": float(np.mean(oks))}

    table = {kind: row(scores, seg_ok[kind]) for kind, scores in sorted(per_kind.items())}
    table["all"] = row([s for scores in per_kind.values() for s in scores],
                       [ok for k, oks in seg_ok.items() if k != "gcg" for ok in oks])
    table["gcg"] = {"videos": len(seg_ok["gcg"]), "seg_count_acc": float(np.mean(seg_ok["gcg"]))}
    return table


def main(argv: list[str] | None = None) -> int:
    import torch

    from videoglamm.modeling.videoglamm import VideoGLaMM

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="videoglamm-tiny-synthetic", help="folder, shipped name or preset")
    parser.add_argument("--videos", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1000, help="held-out set; the training set used seed 0")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--mask-mode", default=None, choices=("framewise", "track"),
                        help="default: the model's own (config.inference.mask_mode)")
    parser.add_argument("--out", default=None, help="write the table as JSON here")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    from videoglamm.errors import InputError

    if args.videos < 1 or args.frames < 1:
        raise InputError(f"--videos and --frames must be >= 1, got {args.videos} and {args.frames}")
    torch.set_num_threads(args.threads)
    model = VideoGLaMM.from_pretrained(args.model).eval()
    args.mask_mode = args.mask_mode or model.config.inference.mask_mode
    start = time.time()
    with torch.no_grad():
        table = evaluate(model, args.videos, args.seed, args.frames, args.mask_mode)
    print(f"model {args.model}, {args.videos} held-out videos (seed {args.seed}), "
          f"mask mode {args.mask_mode}, "
          f"{time.time() - start:.0f} s")
    print(f"{'kind':<11}{'exprs':>7}{'J&F':>8}{'J':>8}{'F':>8}{'[SEG] count ok':>16}")
    for kind, row in table.items():
        scores = "".join(f"{row[k]:>8.3f}" if k in row else f"{'-':>8}" for k in ("J&F", "J", "F"))
        count = row.get("expressions", row.get("videos"))
        print(f"{kind:<11}{count:>7}{scores}{row['seg_count_acc']:>16.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "table": table}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from videoglamm.cli.entry import run_script

    sys.exit(run_script("eval_synthetic.py", main))
