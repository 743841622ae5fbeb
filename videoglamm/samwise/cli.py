"""`videoglamm predict --model samwise-... VIDEO "prompt 1" "prompt 2"`: SAMWISE's side of the command."""

from __future__ import annotations

import argparse
from pathlib import Path


def run_predict(args: argparse.Namespace) -> int:
    """Track every prompt in the video and write one output folder with one mask track per prompt.

    Writes `answer.txt` (the prompts), `result.json`, `masks/<k>/<frame>.png` and `overlay.mp4`.
    """
    from videoglamm.samwise.model import SAMWISE
    from videoglamm.writers import write_prediction

    model = SAMWISE.from_pretrained(args.model, device=args.device).eval()
    stream = model.predict_stream(args.video, list(args.prompt), clip_length=args.clip_length, hsa=args.hsa)
    out = Path(args.out)
    write_prediction(stream, out, fps=args.fps, progress=not args.no_progress,
                     extra={"prompts": list(args.prompt), "model": str(args.model), "video": str(args.video)})
    for k, phrase in enumerate(stream.phrases):
        print(f"{out}/masks/{k}: {phrase}")
    return 0
