"""`videoglamm demo`: a synthetic video, a referring question and a GCG question, answered with masks.

It runs the shipped `videoglamm-tiny-synthetic` model (trained on synthetic shapes, CPU-sized). Where an
install lacks it, it falls back to the `videoglamm-tiny` architecture with random weights and says so.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="videoglamm_demo", help="output folder")
    parser.add_argument("--model", default="videoglamm-tiny-synthetic", help="model folder, shipped name or preset")
    parser.add_argument("--seed", type=int, default=2026, help="which synthetic video to make")
    parser.add_argument("--frames", type=int, default=24, help="frames in the synthetic video")
    parser.add_argument("--mask-mode", default=None, choices=("framewise", "track"),
                        help="default: the model's own (config.inference.mask_mode)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import logging
    import shutil
    from pathlib import Path

    from videoglamm.atomic import atomic_dir, check_output_path
    from videoglamm.data.synthetic import generate_video
    from videoglamm.errors import CheckpointError, InputError
    from videoglamm.modeling.videoglamm import VideoGLaMM

    log = logging.getLogger("videoglamm.demo")
    if args.frames < 1:
        raise InputError(f"--frames must be >= 1, got {args.frames}")
    check_output_path(args.out)
    try:
        model = VideoGLaMM.from_pretrained(args.model)
    except CheckpointError as err:
        if args.model != "videoglamm-tiny-synthetic":
            raise
        log.warning("%s; running the videoglamm-tiny architecture with RANDOM weights instead: "
                    "answers and masks will be meaningless", err)
        model = VideoGLaMM.from_pretrained("videoglamm-tiny")
    model.eval()
    out = Path(args.out)
    video = generate_video(args.seed, 0, num_frames=args.frames)
    # Everything goes to a temporary sibling renamed onto --out at the end: a failure leaves nothing.
    tmp, commit = atomic_dir(out)
    try:
        _answer(args, model, video, tmp, out)
        commit()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return 0


def _answer(args: argparse.Namespace, model: Any, video: Any, tmp: "Path", out: "Path") -> None:
    """Write the input video and the two answers into `tmp`; print where they will be under `out`."""
    from videoglamm.data.templates import GCG_QUESTIONS, RVOS_QUESTIONS
    from videoglamm.modeling.predict import PredictOptions, predict_stream
    from videoglamm.visualize import write_video
    from videoglamm.writers import write_prediction

    write_video(tmp / "input.mp4", video.frames)
    referring = next(e for e in video.expressions if e["kind"] == "appearance")["exp"]
    questions = {
        "referring": RVOS_QUESTIONS[2].format(phrase=referring),
        "gcg": GCG_QUESTIONS[0],
    }
    print(f"video: {out / 'input.mp4'} ({args.frames} frames; objects: {', '.join(o.name for o in video.objects)})")
    options = PredictOptions.for_model(model.config, **({"mask_mode": args.mask_mode} if args.mask_mode else {}))
    print(f"mask mode: {options.mask_mode}")
    for name, question in questions.items():
        stream = predict_stream(model, model._processor(), str(tmp / "input.mp4"), question, options)
        write_prediction(stream, tmp / name, progress=not args.no_progress,
                         extra={"prompt": question, "model": args.model})
        print(f"[{name}] Q: {question}\n[{name}] A: {stream.text}\n[{name}] overlay: {out / name / 'overlay.mp4'}")
