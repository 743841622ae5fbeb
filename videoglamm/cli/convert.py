"""`videoglamm convert`: turn an official checkpoint into a folder that `VideoGLaMM.from_pretrained` loads."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)

DTYPES = ("float16", "bfloat16", "float32")
# Kinds that hold a whole model, hence can become a from_pretrained folder. The others (towers, SAM2,
# VideoGPT+) are parts: convert them in Python with `videoglamm.convert.convert_official`.
FOLDER_KINDS = ("videoglamm",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=FOLDER_KINDS,
                        help="checkpoint kind: 'videoglamm' = the HF-format VideoGLaMM release")
    parser.add_argument("--src", required=True,
                        help="the release folder (sharded, with its index JSON) or a single weights file")
    parser.add_argument("--clip", required=True,
                        help="HF openai/clip-vit-large-patch14-336 weights (file or folder); "
                             "the release has no CLIP")
    parser.add_argument("--tokenizer",
                        help="folder with the release's tokenizer (default: --src when it has one)")
    parser.add_argument("--dtype", choices=DTYPES, help="cast every tensor (default: keep the file's dtypes)")
    parser.add_argument("--preset", default="videoglamm-phi3-mini", help="target architecture preset")
    parser.add_argument("--dst", required=True, help="output folder (appears only when complete)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from videoglamm.config import VideoGLaMMConfig
    from videoglamm.convert.release_folder import convert_release_folder

    report = convert_release_folder(
        args.src, args.dst, clip=args.clip, tokenizer=args.tokenizer,
        dtype=getattr(torch, args.dtype) if args.dtype else None,
        config=VideoGLaMMConfig.from_preset(args.preset),
        progress=not args.no_progress,
    )
    logger.info("%s", report.format())
    logger.info("wrote %s; load it with VideoGLaMM.from_pretrained(%r)", args.dst, str(args.dst))
    return 0
