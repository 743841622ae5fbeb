"""Model sizes and the cost of one training step: prints numbers, asserts nothing.

    python eval/bench_model.py [--repeats 10] [--threads N]

1. Parameter counts per part for both presets (the full one built on the meta device).
2. Wall time of one forward + backward of the tiny preset on one 8-frame sample with one [SEG].
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from videoglamm import VideoGLaMM, VideoGLaMMProcessor
from videoglamm.config import VideoGLaMMConfig

PARTS = ("image_tower", "video_tower", "image_adapter", "video_adapter", "llm", "seg_projector", "mask_decoder")


def counts(preset: str) -> dict[str, tuple[int, int]]:
    config = VideoGLaMMConfig.from_preset(preset)
    with torch.device("meta"):
        model = VideoGLaMM(config)
    out = {}
    for part in PARTS:
        params = list(getattr(model, part).parameters())
        out[part] = (sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad))
    out["total"] = (sum(v[0] for v in out.values()), sum(v[1] for v in out.values()))
    return out


def step_time(repeats: int) -> list[float]:
    torch.manual_seed(0)
    model = VideoGLaMM(VideoGLaMMConfig.from_preset("videoglamm-tiny"))
    processor = VideoGLaMMProcessor.from_preset("videoglamm-tiny")
    video = np.random.default_rng(0).integers(0, 256, size=(8, 96, 128, 3), dtype=np.uint8)
    masks = torch.zeros(1, 8, 96, 128, dtype=torch.bool)
    masks[:, :, 20:60, 30:80] = True
    batch = processor(videos=[video], prompts=["What is the red circle?"], answers=["It is [SEG]."], masks=[masks])
    times = []
    for _ in range(repeats + 2):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        model(**batch).loss.backward()
        times.append(time.perf_counter() - t0)
    return times[2:]  # the first two warm up allocators and kernels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (on a CPU shared with other jobs, 1 avoids threads spinning on busy cores)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for preset in ("videoglamm-phi3-mini", "videoglamm-tiny"):
        print(f"\n{preset}: parameters (total / trainable)")
        for part, (total, trainable) in counts(preset).items():
            print(f"   {part:<14} {total:>15,} {trainable:>15,}")
    times = step_time(args.repeats)
    print(f"\nvideoglamm-tiny forward + backward, 1 sample, 8 frames, {torch.get_num_threads()} threads: "
          f"median {statistics.median(times) * 1000:.1f} ms, min {min(times) * 1000:.1f} ms over {len(times)} runs")


if __name__ == "__main__":
    from videoglamm.cli.entry import run_script

    sys.exit(run_script("bench_model.py", main))
