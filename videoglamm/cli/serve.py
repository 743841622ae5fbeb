"""`videoglamm serve [--model NAME] [--samwise-model NAME] [--host H] [--port N]`: the local web demo."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="videoglamm-tiny-synthetic",
                        help="VideoGLaMM model: folder from save_pretrained, a shipped model or a preset")
    parser.add_argument("--samwise-model", default="samwise-tiny", help="SAMWISE model: folder or preset")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: this machine only; 0.0.0.0 exposes it to the network)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", default=None,
                        help="where each request's outputs go (default: a temporary folder removed on exit)")


def run(args: argparse.Namespace) -> int:
    import shutil
    import tempfile
    from pathlib import Path

    from videoglamm.errors import InputError
    from videoglamm.samwise.persistence import is_samwise
    from videoglamm.serve.app import import_gradio, launch
    from videoglamm.serve.session import VIDEOGLAMM, ModelCache

    import_gradio()  # fail now, with the install command, when the [demo] extra is missing
    if is_samwise(args.model):
        raise InputError(f"--model {args.model} is a SAMWISE model: pass it as --samwise-model")
    models = ModelCache(args.model, args.samwise_model, device=args.device)
    models.get(VIDEOGLAMM)  # load the default model before serving: a bad --model fails here, not in the page
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="videoglamm-serve-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        launch(models, root, host=args.host, port=args.port)
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    return 0
