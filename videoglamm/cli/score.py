"""`videoglamm score`: evaluation metrics over predictions on disk.

    videoglamm score rvos --protocol davis-semi|davis-unsup|mevis --gt GT --pred PRED
                          [--sequences a,b] [--out FILE.json]
    videoglamm score captions --refs refs.json --preds preds.json [--out FILE.json]
    videoglamm score gcg --gt GT_DIR --pred PRED_DIR [--text-encoder module:function] [--no-captions]
    videoglamm score vg --gt gt.json --pred PRED_DIR_OR_JSON [--out FILE.json]

Layouts are documented in `videoglamm.metrics.evaluate_rvos`, `evaluate_gcg` and `evaluate_vg`;
captions take `{id: [ref, ...]}` and `{id: pred}`. The result JSON goes to --out (written atomically:
a temporary file in the same folder, then os.replace) or to stdout.
Only argparse is imported here at module level: the dispatcher imports every subcommand to build
`--help`, and the metric modules load only when a task runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from videoglamm.errors import ConfigError, InputError

RVOS_PROTOCOLS = ("davis-semi", "davis-unsup", "mevis")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    rvos = tasks.add_parser("rvos", help="J&F for DAVIS semi/unsupervised or MeViS protocols")
    rvos.add_argument("--protocol", required=True, choices=RVOS_PROTOCOLS)
    rvos.add_argument("--gt", required=True, type=Path,
                      help="DAVIS: <gt>/<seq>/<frame>.png; "
                           "MeViS: folder with meta_expressions.json + mask_dict.json")
    rvos.add_argument("--pred", required=True, type=Path,
                      help="DAVIS: <pred>/<seq>/<frame>.png; MeViS: <pred>/<video>/<exp_id>/<frame>.png")
    rvos.add_argument("--sequences", help="comma-separated sequences (DAVIS) or videos (MeViS) to score")
    rvos.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                      help="processes scoring sequences in parallel (default: min(4, CPU count))")
    caps = tasks.add_parser("captions", help="BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap, needs Java)")
    caps.add_argument("--refs", required=True, type=Path, help="JSON {id: [reference, ...]}")
    caps.add_argument("--preds", required=True, type=Path, help="JSON {id: prediction}")
    gcg = tasks.add_parser("gcg", help="GCG mIoU, recall, AP50 and caption metrics")
    gcg.add_argument("--gt", required=True, type=Path)
    gcg.add_argument("--pred", required=True, type=Path)
    gcg.add_argument("--text-encoder", help="module:function returning (N, D) embeddings for a list of "
                     "phrases; used when bert-base-uncased is not in the local cache")
    gcg.add_argument("--clair-judge", help="module:function(candidate, references) -> score in [0, 1]")
    gcg.add_argument("--no-captions", action="store_true", help="skip caption metrics (no Java needed)")
    vg = tasks.add_parser("vg", help="visual grounding box IoU per question type (tIoU/vIoU with spans)")
    vg.add_argument("--gt", required=True, type=Path)
    vg.add_argument("--pred", required=True, type=Path)
    for sub in (rvos, caps, gcg, vg):
        sub.add_argument("--out", type=Path, help="write the JSON result here instead of stdout")


def _load_callable(spec: str) -> Callable[..., Any]:
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ConfigError(f"expected module:function, got {spec!r}")
    try:
        fn = getattr(importlib.import_module(module), name, None)
    except ImportError as err:
        raise ConfigError(f"{spec!r}: cannot import module {module!r} ({err}); is it on PYTHONPATH?") from None
    if not callable(fn):
        raise ConfigError(f"{spec!r} does not name a callable")
    return fn


def _read_json(path: Path) -> dict[str, Any]:
    from videoglamm.safe_io import read_json

    return read_json(path, InputError, what="{id: ...} captions")


def write_json_atomic(obj: Any, path: Path) -> None:
    """Writes JSON so readers never see a half-written file: temp file in the same folder, then
    os.replace (atomic on POSIX and Windows).

    Raises:
        InputError: `path` is a folder or lies under a file.
    """
    from videoglamm.atomic import write_text

    write_text(path, json.dumps(obj, indent=2) + "\n")


def _run_task(args: argparse.Namespace) -> dict[str, Any]:
    if args.out is not None:
        from videoglamm.atomic import check_output_path

        check_output_path(args.out, "file")  # before scoring, not after
    if args.task == "rvos":
        if args.workers < 1:
            raise InputError(f"--workers must be >= 1, got {args.workers}")
        from videoglamm.metrics.evaluate_rvos import evaluate_rvos

        seqs = [s for s in args.sequences.split(",") if s] if args.sequences else None
        return evaluate_rvos(args.protocol, args.gt, args.pred, seqs, workers=args.workers)
    if args.task == "captions":
        from videoglamm.metrics.captions import caption_scores

        scores = caption_scores(_read_json(args.refs), _read_json(args.preds))
        return {"task": "captions", **scores.corpus, "per_caption": scores.per_caption}
    if args.task == "gcg":
        from videoglamm.metrics.evaluate_gcg import evaluate_gcg

        encoder = _load_callable(args.text_encoder) if args.text_encoder else None
        judge = _load_callable(args.clair_judge) if args.clair_judge else None
        return evaluate_gcg(args.gt, args.pred, encoder, args.text_encoder or "custom",
                            captions=not args.no_captions, clair_judge=judge)
    from videoglamm.metrics.evaluate_vg import evaluate_vg

    return evaluate_vg(args.gt, args.pred)


def run(args: argparse.Namespace) -> int:
    result = _run_task(args)
    missing = result.get("missing_predictions") or []
    if missing:
        print(f"videoglamm score: {len(missing)} prediction files missing, scored as empty "
              f"(listed under missing_predictions), e.g. {missing[0]}", file=sys.stderr)
    if args.out:
        write_json_atomic(result, args.out)
    else:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0
