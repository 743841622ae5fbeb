"""Grounded conversation generation benchmarks: caption + one mask track per phrase, then `evaluate_gcg`.

    python eval/gcg.py --benchmark burst-ytvis-test --annotations video_gcg/instruction_data/test.json \
        --root burst/frames/test --ytvis-frames-root ytvis_2019/JPEGImages --model DIR --out OUT
    python eval/gcg.py --benchmark mevis-gcg-valid-u --annotations mevis_gcg/valid_u --root MeViS/valid_u ...
    python eval/gcg.py --benchmark vidstg-gcg-val --annotations vidstg_gcg/val_captions --root vidstg_gcg/val ...

`--annotations` / `--root` are what `BurstYTVISGCGReader` (instruction JSON / BURST frames) and
`PhraseGCGReader.mevis` / `.stvg` (caption folder / split folder) read; every frame of a video is used.
The prompt is the official fixed one, `max_new_tokens` the model's (official: 512). Predicted masks lose connected components
under 20 pixels (the official `remove_small_objects`). The caption scored is the answer alone with
`<p>` tags and `[SEG]` removed (the official script likely leaks the prompt into it: not reproduced).

Outputs under `--out`: `gt/` and `pred/` in the `evaluate_gcg` layout (`gcg.json`,
`<video>/<k>/<frame>.png`, frames named by index `00000`...), `done/` markers and `result.json` with
mIoU, AP50, recall (None without a local bert-base-uncased or `--text-encoder`) and, unless
`--no-captions`, the caption metrics (Java needed for METEOR).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from eval.common import (  # noqa: E402
    ItemStore, Predictor, add_common_arguments, open_run, result_header, run_items, save_mask_png,
    write_item_dir, write_json_atomic,
)

BENCHMARKS = {"burst-ytvis-test": "test", "mevis-gcg-valid-u": "valid_u", "vidstg-gcg-val": "val"}
_PHRASE = re.compile(r"<p>\s*(.*?)\s*</p>", re.S)
_TAG = re.compile(r"<[^<>]*>|\[SEG\]")


def clean_caption(text: str) -> str:
    """Answer text without `<p>`/`</p>` tags and `[SEG]`, whitespace collapsed."""
    return " ".join(_TAG.sub(" ", text).split())


def remove_small_components(mask: np.ndarray, min_size: int = 20) -> np.ndarray:
    """bool (H, W) without 4-connected components smaller than `min_size` (skimage's default)."""
    from scipy import ndimage

    if not mask.any():
        return mask
    comp, _ = ndimage.label(mask)
    keep = np.bincount(comp.ravel()) >= min_size
    keep[0] = False
    return keep[comp]


def open_reader(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The benchmark's reader over all frames and the item (video) names in record order."""
    from videoglamm.data.readers import BurstYTVISGCGReader, PhraseGCGReader

    if args.benchmark == "burst-ytvis-test":
        reader = BurstYTVISGCGReader(args.annotations, args.root, args.ytvis_frames_root or args.root,
                                     num_frames=None, max_bad_fraction=0.0)
        names = [str(Path(r["file_names"][0]).parent) for r in reader.records]
    else:
        build = PhraseGCGReader.mevis if args.benchmark == "mevis-gcg-valid-u" else PhraseGCGReader.stvg
        reader = build(args.annotations, args.root, num_frames=None, max_bad_fraction=0.0)
        names = [r.stem for r in reader.records]
    return reader, names


def _write_objects(root: Path, masks: Sequence[np.ndarray]) -> None:
    """`root/<k>/<t:05d>.png` for every object k and frame t."""
    def fill(tmp: Path) -> None:
        for k, track in enumerate(masks):
            (tmp / str(k)).mkdir()
            for t, mask in enumerate(track):
                save_mask_png(mask, tmp / str(k) / f"{t:05d}.png")

    write_item_dir(root, fill)


def _work(predictor: Predictor, reader: Any, names: list[str], out: Path):
    from videoglamm.data.templates import GCG_QUESTIONS

    index = {name: i for i, name in enumerate(names)}

    def work(video: str) -> dict[str, Any]:
        # Strict load: evaluation never substitutes another video for a bad one.
        sample = reader.load(index[video])
        frames = np.stack([np.asarray(f.convert("RGB")) for f in sample.frames])
        gt_masks = sample.masks.numpy().astype(bool)
        _write_objects(out / "gt" / video, list(gt_masks))
        result = predictor.predict(frames, [GCG_QUESTIONS[0]])[0]
        pred_masks = [np.stack([remove_small_components(m) for m in track.numpy().astype(bool)])
                      for track in result.masks]
        _write_objects(out / "pred" / video, pred_masks)
        return {"gt": {"caption": clean_caption(sample.answer), "phrases": _PHRASE.findall(sample.answer)},
                "pred": {"caption": clean_caption(result.text), "phrases": result.phrases},
                "answer": result.text}

    return work


def main(argv: Sequence[str] | None = None, predictor: Predictor | None = None,
         text_encoder: Any = None) -> dict[str, Any] | None:
    """Run a GCG benchmark; returns the result dict on rank 0 (None elsewhere).

    Args:
        argv: command-line arguments (default: sys.argv).
        predictor: an already loaded model (default: load `--model`).
        text_encoder: phrase encoder for recall when bert-base-uncased is not cached (see evaluate_gcg).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS))
    parser.add_argument("--annotations", required=True, type=Path,
                        help="BURST-YTVIS instruction JSON, or the caption folder (<video>.json)")
    parser.add_argument("--root", required=True, type=Path, help="BURST frames root, or the split folder")
    parser.add_argument("--ytvis-frames-root", type=Path, help="YTVIS-2019 frames (burst-ytvis-test)")
    parser.add_argument("--no-captions", action="store_true", help="skip caption metrics (no Java needed)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    reader, names = open_reader(args)
    acc, predictor = open_run(args, predictor)
    predictor.require_kind("videoglamm", "GCG (captions with grounded phrases)")
    out, store = args.out, ItemStore(args.out)
    computed = run_items(names, _work(predictor, reader, names, out), store, acc, args.benchmark,
                         not args.no_progress)
    if not acc.is_main_process:
        return None
    records = store.load(names)
    for side in ("gt", "pred"):
        write_json_atomic({v: records[v][side] for v in names}, out / side / "gcg.json")
    from videoglamm.metrics.evaluate_gcg import evaluate_gcg

    scored = evaluate_gcg(out / "gt", out / "pred", text_encoder=text_encoder,
                          encoder_name="custom" if text_encoder else "bert-base-uncased",
                          captions=not args.no_captions)
    result = result_header(predictor, args.benchmark, BENCHMARKS[args.benchmark], "gcg", len(names),
                           computed_this_run=computed)
    result["metrics"] = {k: v for k, v in scored.items() if k not in ("per_video", "missing_predictions", "task")}
    result["per_video"] = scored["per_video"]
    result["missing_predictions"] = scored["missing_predictions"]
    write_json_atomic(result, out / "result.json")
    return result


if __name__ == "__main__":
    from videoglamm.cli.entry import run_script

    sys.exit(run_script("gcg.py", main))
