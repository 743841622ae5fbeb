"""Referring VOS benchmarks: predict every expression of every video, then score or zip.

    python eval/rvos.py --benchmark mevis-valid-u --root MeViS --model DIR --out OUT
    python eval/rvos.py --benchmark mevis-valid   --root MeViS --model DIR --out OUT
    python eval/rvos.py --benchmark ref-ytvos     --root Ref-YouTube-VOS --model DIR --out OUT
    python eval/rvos.py --benchmark ref-davis17   --root Ref-DAVIS17 --model DIR --out OUT
    accelerate launch --num_processes 8 eval/rvos.py ...      # sharded over processes

Inputs (`--root`):
* MeViS: `<root>/<split>/{meta_expressions.json, mask_dict.json, JPEGImages/<video>/<frame>.jpg}`.
* Ref-YouTube-VOS / Ref-DAVIS17 (ReferFormer layout): `<root>/meta_expressions/valid/meta_expressions.json`
  and `<root>/valid/JPEGImages/...` (or the flat `<root>/meta_expressions.json` + `<root>/JPEGImages`).
  Ref-YouTube-VOS videos also listed in `meta_expressions/test` are dropped (202 validation videos).
  Ref-DAVIS17 GT: `<root>/valid/Annotations` (semi-supervised ids) and the DAVIS-2017 unsupervised
  annotations `<root>/valid/Annotations_unsupervised` (override with --davis-gt-semi/--davis-gt-unsup).

Outputs (`--out`): `predictions/<video>/<exp_id>/<frame>.png` (0/255, first `[SEG]` only, as the
official scripts), `done/` markers with the answers, and `result.json`:
* mevis-valid-u: scored locally with `evaluate_mevis` (J, F, J&F over expressions);
* mevis-valid, ref-ytvos: `submission.zip` for the servers (`<video>/<exp_id>/<frame>.png` for MeViS,
  `Annotations/<video>/<exp_id>/<frame>.png` for Ref-YouTube-VOS), no local metrics. The MeViS zip
  layout follows the official inference output folder; it was not checked against the server here;
* ref-davis17: expressions k*4 + s of a video are object k of annotator set s (our reading of
  ReferFormer's converted meta: annot1, annot1_full_video, annot2, annot2_full_video); per set and frame the object masks become one
  palette PNG `predictions/<set>/<video>/<frame>.png` (id = k + 1; where masks overlap, the first object
  wins, as the official argmax over binary masks; `--davis-overlap score`: the higher SAM2 object score). Each set is scored with both
  `davis-unsup` (the ReferFormer/VideoGLaMM protocol) and `davis-semi`; the 4 sets are reported
  separately and averaged. Videos are predicted whole (the official script cuts 64-frame clips).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from eval.common import (  # noqa: E402
    ItemStore, Predictor, add_common_arguments, first_mask, load_frames, open_run, result_header,
    run_items, save_mask_png, write_item_dir, write_json_atomic, zip_dir_atomic,
)
from videoglamm.errors import DatasetError  # noqa: E402

DAVIS_SETS = ("annot1", "annot1_full_video", "annot2", "annot2_full_video")
PROMPT = "What is {} in this video? Please respond with segmentation masks."


@dataclass(frozen=True)
class Benchmark:
    split: str
    protocol: str  # "mevis", "server" or "davis"
    layout: str  # "mevis" or "refvos"


BENCHMARKS = {
    "mevis-valid-u": Benchmark("valid_u", "mevis", "mevis"),
    "mevis-valid": Benchmark("valid", "server", "mevis"),
    "ref-ytvos": Benchmark("valid", "server", "refvos"),
    "ref-davis17": Benchmark("valid", "davis", "refvos"),
}


def _paths(root: Path, bench: Benchmark) -> tuple[Path, Path]:
    """(meta_expressions.json, frames root) of a benchmark."""
    if bench.layout == "mevis":
        return root / bench.split / "meta_expressions.json", root / bench.split / "JPEGImages"
    if (root / "meta_expressions.json").is_file():
        return root / "meta_expressions.json", root / "JPEGImages"
    return root / "meta_expressions" / bench.split / "meta_expressions.json", root / bench.split / "JPEGImages"


def list_expressions(root: Path, name: str) -> dict[str, list[Any]]:
    """Video -> its expressions (natural exp_id order), test videos removed for Ref-YouTube-VOS."""
    from videoglamm.data.readers.refvos import read_expressions

    bench = BENCHMARKS[name]
    meta, _ = _paths(root, bench)
    by_video: dict[str, list[Any]] = {}
    for exp in read_expressions(meta, "obj_id" if bench.layout == "refvos" else None):
        by_video.setdefault(exp.video, []).append(exp)
    test_meta = root / "meta_expressions" / "test" / "meta_expressions.json"
    if name == "ref-ytvos" and test_meta.is_file():
        test_videos = {e.video for e in read_expressions(test_meta)}
        by_video = {v: e for v, e in by_video.items() if v not in test_videos}
    if name == "ref-davis17":
        for video, exps in by_video.items():
            if len(exps) % len(DAVIS_SETS):
                raise DatasetError(f"{meta}: video {video!r} has {len(exps)} expressions, not a multiple of the "
                                   f"{len(DAVIS_SETS)} Ref-DAVIS17 annotator sets")
    return by_video


def _prompts(predictor: Predictor, exps: Sequence[Any], keep_case: bool = False) -> list[str]:
    # SAMWISE takes the bare expression as written; VideoGLaMM the official question template around the
    # lower-cased expression, as the official runners ask it (`keep_case` to ask it as written).
    if predictor.kind == "samwise":
        return [e.text for e in exps]
    return [PROMPT.format(e.text if keep_case else e.text.lower()) for e in exps]


def _palette(masks: list[np.ndarray], scores: list[np.ndarray], overlap: str = "first") -> np.ndarray:
    """Object masks (T, H, W) and scores (T,) -> uint8 (T, H, W) ids, 0 = background.

    Where masks overlap, "first": the object listed first wins (the official argmax over binary masks);
    "score": the one with the higher SAM2 object score that frame.
    """
    t, h, w = masks[0].shape
    labels = np.zeros((t, h, w), dtype=np.uint8)
    if overlap == "first":
        for k in reversed(range(len(masks))):  # earlier objects are written last, so they win
            labels[masks[k]] = k + 1
        return labels
    best = np.full((t, h, w), -np.inf)
    for k, (mask, score) in enumerate(zip(masks, scores)):
        take = mask & (score[:, None, None] > best)
        labels[take] = k + 1
        best[take] = np.broadcast_to(score[:, None, None], mask.shape)[take]
    return labels


def davis_palette() -> list[int]:
    """The 256-colour DAVIS/PASCAL palette (bit-interleaved ids), flattened RGB."""
    palette = []
    for index in range(256):
        r = g = b = 0
        for bit in range(8):
            r |= ((index >> (3 * bit)) & 1) << (7 - bit)
            g |= ((index >> (3 * bit + 1)) & 1) << (7 - bit)
            b |= ((index >> (3 * bit + 2)) & 1) << (7 - bit)
        palette += [r, g, b]
    return palette


def _save_palette(labels: np.ndarray, path: Path, palette: list[int]) -> None:
    from PIL import Image

    png = Image.fromarray(labels, mode="P")
    png.putpalette(palette)
    png.save(path)


def _predict_video(predictor: Predictor, frames_root: Path, video: str, exps: list[Any], keep_case: bool = False):
    frames = load_frames([frames_root / video / f"{f}.jpg" for f in exps[0].frames])
    results = predictor.predict(frames, _prompts(predictor, exps, keep_case))
    size, n = frames.shape[1:3], frames.shape[0]
    return results, [first_mask(r, size, n) for r in results]


def _work(predictor: Predictor, out: Path, frames_root: Path, name: str, by_video: dict[str, list[Any]],
          keep_case: bool = False, overlap: str = "first"):
    def work(video: str) -> dict[str, Any]:
        exps = by_video[video]
        results, masks = _predict_video(predictor, frames_root, video, exps, keep_case)
        names = exps[0].frames
        if name == "ref-davis17":
            palette = davis_palette()
            scores = [r.scores[0].numpy() if r.masks else np.full(len(names), -np.inf) for r in results]
            for s, set_name in enumerate(DAVIS_SETS):
                picked = list(range(s, len(exps), len(DAVIS_SETS)))
                labels = _palette([masks[i] for i in picked], [scores[i] for i in picked], overlap)

                def fill(tmp: Path, labels: np.ndarray = labels) -> None:
                    for t, frame in enumerate(names):
                        _save_palette(labels[t], tmp / f"{frame}.png", palette)

                write_item_dir(out / "predictions" / set_name / video, fill)
        else:
            def fill(tmp: Path) -> None:
                for exp, mask in zip(exps, masks):
                    (tmp / exp.exp_id).mkdir()
                    for t, frame in enumerate(names):
                        save_mask_png(mask[t], tmp / exp.exp_id / f"{frame}.png")

            write_item_dir(out / "predictions" / video, fill)
        return {"answers": {e.exp_id: r.text for e, r in zip(exps, results)}}

    return work


def _score_davis(args: argparse.Namespace, out: Path, videos: list[str]) -> dict[str, Any]:
    from videoglamm.metrics.evaluate_rvos import evaluate_davis

    base = args.root if (args.root / "meta_expressions.json").is_file() else args.root / "valid"
    gts = {"davis-unsup": args.davis_gt_unsup or base / "Annotations_unsupervised",
           "davis-semi": args.davis_gt_semi or base / "Annotations"}
    metrics: dict[str, Any] = {}
    for protocol, gt in gts.items():
        if not Path(gt).is_dir():
            raise FileNotFoundError(f"{protocol} GT folder not found: {gt} (set --{protocol.replace('davis', 'davis-gt')})")
        per_set = {}
        for set_name in DAVIS_SETS:
            scored = evaluate_davis(gt, out / "predictions" / set_name, protocol, videos, progress=False)
            per_set[set_name] = {k: v for k, v in scored.items() if k.startswith(("J", "F"))}
        keys = per_set[DAVIS_SETS[0]]
        mean = {k: float(np.mean([per_set[s][k] for s in DAVIS_SETS])) for k in keys}
        metrics[protocol] = {"gt": str(gt), "sets": per_set, "mean": mean}
    return metrics


def main(argv: Sequence[str] | None = None, predictor: Predictor | None = None) -> dict[str, Any] | None:
    """Run a benchmark; returns the result dict on rank 0 (None elsewhere)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS))
    parser.add_argument("--root", required=True, type=Path, help="dataset root (layouts in the module doc)")
    parser.add_argument("--davis-gt-semi", type=Path, help="Ref-DAVIS17 GT for davis-semi")
    parser.add_argument("--davis-gt-unsup", type=Path, help="Ref-DAVIS17 GT for davis-unsup")
    parser.add_argument("--workers", type=int, default=1, help="processes scoring MeViS valid_u")
    parser.add_argument("--keep-case", action="store_true",
                        help="VideoGLaMM: ask the expression as written (official: lower-cased)")
    parser.add_argument("--davis-overlap", choices=("first", "score"), default="first",
                        help="Ref-DAVIS17 overlapping masks: the first object wins (official) or the higher score")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    bench = BENCHMARKS[args.benchmark]
    by_video = list_expressions(args.root, args.benchmark)
    acc, predictor = open_run(args, predictor)
    out, store = args.out, ItemStore(args.out)
    videos = list(by_video)
    _, frames_root = _paths(args.root, bench)
    work = _work(predictor, out, frames_root, args.benchmark, by_video, args.keep_case, args.davis_overlap)
    computed = run_items(videos, work, store, acc,
                         args.benchmark, not args.no_progress)
    if not acc.is_main_process:
        return None
    store.load(videos)  # every item finished, on every process
    protocol = {"mevis": "mevis", "server": "server", "davis": "davis-unsup+davis-semi"}[bench.protocol]
    result = result_header(predictor, args.benchmark, bench.split, protocol, len(videos),
                           num_expressions=sum(len(e) for e in by_video.values()),
                           computed_this_run=computed)
    if bench.protocol == "mevis":
        from videoglamm.metrics.evaluate_rvos import evaluate_mevis

        scored = evaluate_mevis(args.root / bench.split, out / "predictions", videos, progress=False,
                                workers=args.workers)
        result["metrics"] = {k: scored[k] for k in ("J", "F", "J&F")}
        result["missing_predictions"] = scored["missing_predictions"]
    elif bench.protocol == "server":
        prefix = "Annotations/" if args.benchmark == "ref-ytvos" else ""
        names = zip_dir_atomic(out / "predictions", out / "submission.zip", prefix)
        result["metrics"] = None
        result["submission"] = {"zip": str(out / "submission.zip"), "files": len(names),
                                "scoring": "upload to the official evaluation server"}
    else:
        result["metrics"] = _score_davis(args, out, videos)
    write_json_atomic(result, out / "result.json")
    return result


if __name__ == "__main__":
    from videoglamm.cli.entry import run_script

    sys.exit(run_script("rvos.py", main))
