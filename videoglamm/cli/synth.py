"""`videoglamm synth`: write a synthetic referring-video dataset in the Ref-YouTube-VOS layout."""

from __future__ import annotations

import argparse
import logging

from videoglamm.errors import InputError

logger = logging.getLogger(__name__)


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 96x128 (HxW), got {text!r}") from None
    return height, width


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (created atomically)")
    parser.add_argument("--videos", type=int, required=True, help="number of videos")
    parser.add_argument("--seed", type=int, required=True, help="same seed -> byte-identical output")
    parser.add_argument("--frames", type=int, default=12, help="frames per video (default 12)")
    parser.add_argument("--size", type=_size, default=(96, 128), help="frame size HxW (default 96x128)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from videoglamm.data.synthetic_io import write_dataset

    if args.frames < 1:
        raise InputError(f"--frames must be >= 1, got {args.frames}")
    if min(args.size) < 32:
        raise InputError(f"--size must be at least 32x32 (three bands of shapes must fit), got "
                         f"{args.size[0]}x{args.size[1]}")
    out = write_dataset(args.out, args.videos, args.seed, num_frames=args.frames, size=args.size,
                        overwrite=args.overwrite, progress=not args.no_progress)
    logger.info("wrote %d synthetic videos to %s", args.videos, out)
    return 0
