"""Streaming speed and peak memory of SAMWISE inference for a short and a long video (tiny preset).

Runs each length in a fresh process so the peak RSS of one does not hide the other's, and prints one
line per length: frames, seconds, frames/s, peak RSS (MiB). Memory should stay flat with video length
because SAM2's memory bank is trimmed and frames are read clip by clip.

    python eval/bench_samwise_streaming.py --frames 100 2000 [--device cpu] [--prompts 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _frames(n: int, h: int, w: int):
    """A lazily generated video (one uint8 frame at a time), so the input itself costs no memory."""
    import torch

    g = torch.Generator().manual_seed(0)
    for _ in range(n):
        yield torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)


def run_one(num_frames: int, device: str, num_prompts: int) -> dict:
    import torch

    from videoglamm.samwise.config import SAMWISEConfig
    from videoglamm.samwise.model import SAMWISE
    from videoglamm.samwise.streaming import ClipTracker, _clips

    torch.manual_seed(0)
    model = SAMWISE(SAMWISEConfig.from_preset("samwise-tiny")).to(device).eval()
    prompts = ["the red circle moving left", "the shape moving up", "the blue square"][:num_prompts]
    tracker = ClipTracker(model, prompts)
    start = time.perf_counter()
    done = 0
    for clip in _clips(_frames(num_frames, 96, 128), model.config.inference.clip_length):
        logits, _ = tracker.step(clip)
        done += logits.shape[0]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"frames": done, "seconds": round(seconds, 2), "fps": round(done / seconds, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "memory_entries": len(tracker.state.memory), "device": device, "prompts": num_prompts}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prompts", type=int, default=1)
    parser.add_argument("--_child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child is not None:
        print(json.dumps(run_one(args._child, args.device, args.prompts)))
        return
    for n in args.frames:
        out = subprocess.run([sys.executable, __file__, "--_child", str(n), "--device", args.device,
                              "--prompts", str(args.prompts)], check=True, capture_output=True, text=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    from videoglamm.cli.entry import run_script

    sys.exit(run_script("bench_samwise_streaming.py", main))
