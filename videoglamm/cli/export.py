"""`videoglamm export`: a training checkpoint -> a `from_pretrained` folder (LoRA merged)."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a run's checkpoints/step_* folder")
    parser.add_argument("--out", required=True,
                        help="output folder (written atomically, replaced if present)")


def run(args: argparse.Namespace) -> int:
    from videoglamm.modeling.finetune import export_checkpoint

    model = export_checkpoint(args.checkpoint, args.out)
    total = sum(p.numel() for p in model.parameters())
    logger.info("exported %s (%s parameters) to %s", args.checkpoint, f"{total:,}", args.out)
    return 0
