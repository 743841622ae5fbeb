"""`videoglamm convert`: turn an official checkpoint into a folder that `from_pretrained` loads.

- `videoglamm`: the HF-format VideoGLaMM release (sharded folder) + the HF CLIP it lacks -> `VideoGLaMM`.
- `samwise`: a released SAMWISE `.pth` -> `SAMWISE`.
The other kinds (towers, SAM2, VideoGPT+) are parts of a model: convert them in Python with
`videoglamm.convert.convert_official`.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DTYPES = ("float16", "bfloat16", "float32")
FOLDER_KINDS = ("videoglamm", "samwise")
DEFAULT_PRESETS = {"videoglamm": "videoglamm-phi3-mini", "samwise": "samwise-base"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=FOLDER_KINDS,
                        help="'videoglamm' = the HF-format VideoGLaMM release; 'samwise' = a released SAMWISE .pth")
    parser.add_argument("--src", required=True,
                        help="the release folder (sharded, with its index JSON) or a single weights file")
    parser.add_argument("--clip", help="videoglamm only: HF openai/clip-vit-large-patch14-336 weights (file or "
                                       "folder); the release has no CLIP")
    parser.add_argument("--tokenizer",
                        help="tokenizer folder (videoglamm: default --src when it has one; samwise: a local "
                             "roberta-base tokenizer folder, default the preset's)")
    parser.add_argument("--dtype", choices=DTYPES, help="cast every tensor (default: keep the file's dtypes)")
    parser.add_argument("--preset", help="target architecture preset (default: the kind's full-size preset)")
    parser.add_argument("--dst", required=True, help="output folder (appears only when complete)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from videoglamm.errors import InputError

    dtype = getattr(torch, args.dtype) if args.dtype else None
    preset = args.preset or DEFAULT_PRESETS[args.kind]
    if args.kind == "samwise":
        report = _convert_samwise(args.src, args.dst, preset, args.tokenizer, dtype)
    else:
        from videoglamm.config import VideoGLaMMConfig
        from videoglamm.convert.release_folder import convert_release_folder

        if not args.clip:
            raise InputError("videoglamm convert needs --clip: the release does not contain the CLIP tower")
        report = convert_release_folder(
            args.src, args.dst, clip=args.clip, tokenizer=args.tokenizer, dtype=dtype,
            config=VideoGLaMMConfig.from_preset(preset), progress=not args.no_progress,
        )
    logger.info("%s", report.format())
    logger.info("wrote %s; load it with from_pretrained(%r)", args.dst, str(args.dst))
    return 0


def _convert_samwise(src: str, dst: str, preset: str, tokenizer: str | None, dtype: torch.dtype | None):
    """The SAMWISE release is one file (~250 M tensors): read it whole, convert, check strictly, save."""
    from dataclasses import replace
    from pathlib import Path

    from videoglamm.convert import provenance
    from videoglamm.convert.on_load import convert_samwise_file
    from videoglamm.samwise.config import SAMWISEConfig

    config = SAMWISEConfig.from_preset(preset)
    if tokenizer:
        config.text = replace(config.text, tokenizer=str(tokenizer))
    model, report = convert_samwise_file(Path(src), config, dtype)
    model.card = provenance.samwise_release(provenance.sources([Path(src)]))
    model.save_pretrained(dst)
    return report
