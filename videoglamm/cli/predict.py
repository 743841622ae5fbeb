"""`videoglamm predict VIDEO PROMPT... --model DIR_OR_PRESET --out DIR` (VideoGLaMM or SAMWISE)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file (mp4, avi, ...) or a folder of frame images (jpg/png)")
    parser.add_argument("prompt", nargs="+", help="question(s) about the video")
    parser.add_argument("--model", default="videoglamm-tiny-synthetic",
                        help="folder from save_pretrained, a shipped model or a preset name")
    parser.add_argument("--out", required=True, help="output folder (one subfolder per prompt when several)")
    parser.add_argument("--num-frames", type=int, default=None, help="encoder frames (default: the model's)")
    parser.add_argument("--frame-sampling", choices=("uniform", "spread", "first"), default=None,
                        help="encoder frame sampling (default: the model's)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: the model's")
    parser.add_argument("--mask-mode", choices=("track", "framewise"), default=None, help="default: the model's")
    parser.add_argument("--prompt-frames", choices=("first", "encoder"), default=None, help="default: the model's")
    parser.add_argument("--fps", type=float, default=8.0, help="frame rate of overlay.mp4")
    parser.add_argument("--clip-length", type=int, default=None, help="SAMWISE: frames per clip (default: the model's)")
    parser.add_argument("--hsa", choices=("local", "global"), default=None,
                        help="SAMWISE: HSA over local subvolumes (default) or all positions of a clip")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from videoglamm.atomic import check_output_path
    from videoglamm.errors import InputError
    from videoglamm.modeling.predict import PredictOptions, predict_stream
    from videoglamm.modeling.videoglamm import VideoGLaMM
    from videoglamm.writers import write_prediction

    # Everything that can be checked before the model loads is checked first.
    if not Path(args.video).exists():
        raise InputError(f"video not found: {args.video} (a video file or a folder of frame images)")
    if not args.fps > 0:
        raise InputError(f"--fps (frame rate of overlay.mp4) must be > 0, got {args.fps}")
    if any(not p.strip() for p in args.prompt):
        raise InputError("a prompt is empty; pass the question as text")
    check_output_path(args.out)
    from videoglamm.samwise.persistence import is_samwise

    if is_samwise(args.model):  # a referring-segmentation model: every prompt is tracked in one pass
        from videoglamm.samwise.cli import run_predict

        return run_predict(args)
    model = VideoGLaMM.from_pretrained(args.model, device=args.device, progress=not args.no_progress).eval()
    given = {"num_frames": args.num_frames, "frame_sampling": args.frame_sampling,
             "max_new_tokens": args.max_new_tokens, "mask_mode": args.mask_mode, "prompt_frames": args.prompt_frames}
    opts = PredictOptions.for_model(model.config, **{k: v for k, v in given.items() if v is not None})
    for i, prompt in enumerate(args.prompt):
        out = Path(args.out) if len(args.prompt) == 1 else Path(args.out) / f"prompt_{i}"
        stream = predict_stream(model, model._processor(), args.video, prompt, opts)
        write_prediction(stream, out, fps=args.fps, progress=not args.no_progress,
                         extra={"prompt": prompt, "model": str(args.model), "video": str(args.video)})
        print(f"{out}: {stream.text}")
    return 0
