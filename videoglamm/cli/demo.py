"""`videoglamm demo`: a synthetic video, a referring question and a GCG question, answered with masks.

It runs the shipped `videoglamm-tiny-synthetic` model (trained on synthetic shapes, CPU-sized). Where an
install lacks it, it falls back to the `videoglamm-tiny` architecture with random weights and says so.
"""

from __future__ import annotations

import argparse


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
    from pathlib import Path

    from videoglamm.data.synthetic import generate_video
    from videoglamm.data.templates import GCG_QUESTIONS, RVOS_QUESTIONS
    from videoglamm.errors import CheckpointError
    from videoglamm.modeling.predict import PredictOptions, predict_stream
    from videoglamm.modeling.videoglamm import VideoGLaMM
    from videoglamm.visualize import write_video
    from videoglamm.writers import write_prediction

    log = logging.getLogger("videoglamm.demo")
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
    out.mkdir(parents=True, exist_ok=True)
    video = generate_video(args.seed, 0, num_frames=args.frames)
    video_path = out / "input.mp4"
    write_video(video_path, video.frames)
    referring = next(e for e in video.expressions if e["kind"] == "appearance")["exp"]
    questions = {
        "referring": RVOS_QUESTIONS[2].format(phrase=referring),
        "gcg": GCG_QUESTIONS[0],
    }
    print(f"video: {video_path} ({args.frames} frames; objects: {', '.join(o.name for o in video.objects)})")
    options = PredictOptions.for_model(model.config, **({"mask_mode": args.mask_mode} if args.mask_mode else {}))
    print(f"mask mode: {options.mask_mode}")
    for name, question in questions.items():
        stream = predict_stream(model, model._processor(), str(video_path), question, options)
        folder = write_prediction(stream, out / name, progress=not args.no_progress,
                                  extra={"prompt": question, "model": args.model})
        print(f"[{name}] Q: {question}\n[{name}] A: {stream.text}\n[{name}] overlay: {folder / 'overlay.mp4'}")
    return 0
