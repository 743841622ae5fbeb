"""The `videoglamm` command. Each subcommand lives in its own module of this package.

A subcommand module defines `add_arguments(parser)` and `run(args) -> int`; it is imported only when
that subcommand is used, so `videoglamm --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from videoglamm.errors import VideoGLaMMError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {}


def _register(name: str, module: str, help_text: str) -> None:
    COMMANDS[name] = (module, help_text)


_register("demo", "videoglamm.cli.demo", "run the shipped tiny model on a synthetic video and write overlays")
_register("predict", "videoglamm.cli.predict", "answer a prompt about a video with text and mask tracks")
_register("convert", "videoglamm.cli.convert", "convert an official checkpoint into a from_pretrained folder")
_register("export", "videoglamm.cli.export", "turn a training checkpoint into a from_pretrained folder (LoRA merged)")
_register("synth", "videoglamm.cli.synth", "write a synthetic referring-video dataset (Ref-YouTube-VOS layout)")
_register("serve", "videoglamm.cli.serve", "a local web demo: upload a video, ask, see answer, masks and overlay")
_register("score", "videoglamm.cli.score", "score predictions: RVOS J&F, captions, GCG, visual grounding")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videoglamm", description="Pixel-level grounding in videos.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except (VideoGLaMMError, FileNotFoundError) as err:
        if args.debug:
            raise
        print(f"videoglamm {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
