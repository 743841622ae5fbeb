"""Peak memory of a video session over a short and a long stream (issue 15: 2,000 frames <= 1.2x 100 frames).

Each length runs in a fresh process (peak RSS is a high-water mark). A live VideoGLaMM session (tiny
preset, random weights, SAM2's object score raised so objects are tracked as present) tracks K objects
added by prompt embedding at frame 0, plus a second group added mid-stream; frames are generated one at
a time and pushed, so the input costs no memory. With `--model samwise-tiny` the same for SAMWISE with
two expressions. Prints, per length: frames, seconds, frames/s, peak RSS and RSS after the first 10 frames
(MiB), memory-bank entries and retained frames at the end; then the ratio of peak RSS, long / short.

    python -m eval.bench_session [--frames 100 2000] [--objects 2] [--size 240 320] [--model videoglamm-tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(model_name: str, num_frames: int, objects: int, size: tuple[int, int]) -> dict:
    import torch

    torch.manual_seed(0)
    if model_name.startswith("samwise"):
        from videoglamm.samwise.config import SAMWISEConfig
        from videoglamm.samwise.model import SAMWISE

        model = SAMWISE(SAMWISEConfig.from_preset(model_name)).eval()
        session = model.init_video_session(None)
        session.add_text_prompt([f"the object number {i}" for i in range(objects)])
        add_later = lambda: session.add_text_prompt("the red circle")  # noqa: E731
    else:
        from videoglamm import VideoGLaMM
        from videoglamm.config import VideoGLaMMConfig

        model = VideoGLaMM(VideoGLaMMConfig.from_preset(model_name)).eval()
        with torch.no_grad():
            model.mask_decoder.model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
        session = model.init_video_session(None)
        d = model.mask_decoder.hidden_dim
        session.add_prompt_embeddings(torch.randn(objects, d))
        add_later = lambda: session.add_prompt_embeddings(torch.randn(1, d))  # noqa: E731
    g = torch.Generator().manual_seed(0)
    h, w = size
    t0 = time.perf_counter()
    warm = None
    present = 0
    for i in range(num_frames):
        session.add_frame(torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8))
        if i == 50:
            add_later()
        for out in session.propagate():
            present += int(out.masks.flatten(1).any(1).sum())
        if i == 9:
            warm = _rss_mib()
    if hasattr(session, "end_stream"):
        session.end_stream()
        for out in session.propagate():
            present += int(out.masks.flatten(1).any(1).sum())
    seconds = time.perf_counter() - t0
    return {"frames": num_frames, "seconds": round(seconds, 2), "fps": round(num_frames / seconds, 1),
            "peak_rss_mib": round(_rss_mib(), 1), "rss_after_10_frames_mib": round(warm, 1),
            "memory_entries": session.memory_entries, "retained_frames": session.retained_frames,
            "non_empty_masks": present}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="videoglamm-tiny")
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_one(args.model, args.child, args.objects, tuple(args.size))))
        return
    rows = []
    for n in args.frames:
        cmd = [sys.executable, __file__, "--child", str(n), "--model", args.model, "--objects", str(args.objects),
               "--size", *map(str, args.size)]
        # The child imports the videoglamm of this checkout, as the parent does.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    if len(rows) >= 2:
        print(f"peak RSS ratio {rows[-1]['frames']} / {rows[0]['frames']} frames: "
              f"{rows[-1]['peak_rss_mib'] / rows[0]['peak_rss_mib']:.3f} (target <= 1.2)")


if __name__ == "__main__":
    main()
