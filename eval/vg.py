"""Visual grounding benchmarks (VidSTG test, HC-STVG val): masks -> boxes -> `evaluate_vg`.

    python eval/vg.py --benchmark vidstg --annotations vidstg/test.json --root vidstg/frames --model DIR --out OUT
    python eval/vg.py --benchmark hcstvg --annotations hcstvg/val_v2_proc.json --root hcstvg/frames ...

`--annotations` and `--root` are what `STGroundingReader` reads (TubeDETR-style JSON, pre-extracted
frame folders). As the official script, each sentence's clip [start_frame, end_frame) is sampled at
1 fps (every round(fps)-th frame; `--frame-stride` overrides, needed when a record has no "fps") and
at most `--max-frames` 40 frames (uniform over the 1-fps grid); if no sampled frame has a GT box, the
middle box frame is added. The model sees exactly these frames (at their own resolution; the official
script resizes to a 224 shortest side first). Prompts: interrogative "{caption} Please respond with
segmentation masks.", declarative "Can you segment {caption} in this video?"; records without a
"qtype" (HC-STVG) are declarative (the official script asks generated questions, not reproduced).
The last `[SEG]` mask per frame gives the box (the official script overwrites per object).

Outputs under `--out`: `predictions/<video_id>/<frame:05d>.png`, `gt.json` in the `evaluate_vg` layout
(xyxy GT boxes of the sampled frames inside the tube, span = the tube), `done/` and `result.json`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from eval.common import (  # noqa: E402
    ItemStore, Predictor, add_common_arguments, load_frames, open_run, result_header, run_items,
    save_mask_png, write_item_dir, write_json_atomic,
)
from videoglamm.errors import DatasetError  # noqa: E402

BENCHMARKS = {"vidstg": "test", "hcstvg": "val"}
PROMPTS = {"interrogative": "{} Please respond with segmentation masks.",
           "declarative": "Can you segment {} in this video?"}


def sample_frames(start: int, end: int, stride: int, max_frames: int, box_frames: Sequence[int]) -> list[int]:
    """Frame ids of [start, end) every `stride`, at most `max_frames`, with a GT-box frame guaranteed."""
    from videoglamm.data.sampling import uniform_indices

    grid = list(range(start, end, stride))
    grid = [grid[i] for i in uniform_indices(len(grid), max_frames)]
    if not set(grid) & set(box_frames):
        ordered = sorted(box_frames)
        grid = sorted({*grid, ordered[len(ordered) // 2]})
    return grid


def _item(record: dict, index: int) -> str:
    return str(record.get("video_id", index))


def _gt_entry(reader: Any, record: dict, args: argparse.Namespace, where: str) -> dict[str, Any]:
    """The `evaluate_vg` GT entry of a record plus what prediction needs (frames folder, prompt)."""
    try:
        tube = range(int(record["tube_start_frame"]), int(record["tube_end_frame"]))
        video_dir = args.root / Path(record["video_path"]).with_suffix("")
        caption = record["caption"]
        xywh = reader.tube_boxes(record, tube)
    except (KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"{where}: missing or malformed field {err}") from None
    if not xywh:
        raise DatasetError(f"{where}: the tube {tube.start}..{tube.stop} has no box")
    stride = args.frame_stride or (round(float(record["fps"])) if "fps" in record else None)
    if not stride:
        raise DatasetError(f"{where}: no 'fps' in the record; pass --frame-stride")
    end = int(record.get("end_frame", tube.stop))
    frames = sample_frames(int(record.get("start_frame", 0)), end, stride, args.max_frames, list(xywh))
    qtype = record.get("qtype", "declarative")
    if qtype not in PROMPTS:
        raise DatasetError(f"{where}: unknown qtype {qtype!r}; expected one of {sorted(PROMPTS)}")
    boxes = {str(f): [xywh[f][0], xywh[f][1], xywh[f][0] + xywh[f][2], xywh[f][1] + xywh[f][3]]
             for f in frames if f in xywh}
    return {"qtype": qtype, "frames": frames, "boxes": boxes, "span": [tube.start, tube.stop],
            "video_dir": str(video_dir), "prompt_text": caption}


def _work(predictor: Predictor, reader: Any, items: dict[str, tuple[int, dict]], args: argparse.Namespace):
    from videoglamm.data.io import list_frames

    def work(item: str) -> dict[str, Any]:
        index, record = items[item]
        entry = _gt_entry(reader, record, args, f"{reader.annotation_path} record {item}")
        paths = list_frames(Path(entry["video_dir"]))
        if entry["frames"][-1] >= len(paths):
            raise DatasetError(f"{entry['video_dir']}: needs frame {entry['frames'][-1]}, has {len(paths)}")
        frames = load_frames([paths[f] for f in entry["frames"]])
        caption = entry["prompt_text"]
        prompt = caption if predictor.kind == "samwise" else PROMPTS[entry["qtype"]].format(caption)
        result = predictor.predict(frames, [prompt])[0]
        last = result.masks[-1].numpy().astype(bool) if result.masks else np.zeros(frames.shape[:3], bool)

        def fill(tmp: Path) -> None:
            for t, frame_id in enumerate(entry["frames"]):
                save_mask_png(last[t], tmp / f"{frame_id:05d}.png")

        write_item_dir(args.out / "predictions" / item, fill)
        gt = {k: entry[k] for k in ("qtype", "frames", "boxes", "span")}
        return {"gt": gt, "answer": result.text}

    return work


def main(argv: Sequence[str] | None = None, predictor: Predictor | None = None) -> dict[str, Any] | None:
    """Run a VG benchmark; returns the result dict on rank 0 (None elsewhere)."""
    from videoglamm.data.readers import STGroundingReader

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS))
    parser.add_argument("--annotations", required=True, type=Path, help="TubeDETR-style JSON")
    parser.add_argument("--root", required=True, type=Path, help="root of the pre-extracted frame folders")
    parser.add_argument("--frame-stride", type=int, help="frames between samples (default: round(fps))")
    parser.add_argument("--max-frames", type=int, default=40)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    reader = STGroundingReader(args.annotations, args.root, num_frames=None, dataset_name=args.benchmark)
    items = {_item(r, i): (i, r) for i, r in enumerate(reader.records)}
    if len(items) != len(reader.records):
        raise DatasetError(f"{args.annotations}: video_id values are not unique")
    names = list(items)
    acc, predictor = open_run(args, predictor)
    store = ItemStore(args.out)
    computed = run_items(names, _work(predictor, reader, items, args), store, acc, args.benchmark,
                         not args.no_progress)
    if not acc.is_main_process:
        return None
    records = store.load(names)
    write_json_atomic({v: records[v]["gt"] for v in names}, args.out / "gt.json")
    from videoglamm.metrics.evaluate_vg import evaluate_vg

    scored = evaluate_vg(args.out / "gt.json", args.out / "predictions")
    result = result_header(predictor, args.benchmark, BENCHMARKS[args.benchmark], "vg-box-iou", len(names),
                           computed_this_run=computed, fps_sampling={"frame_stride": args.frame_stride or "round(fps)",
                                                                    "max_frames": args.max_frames})
    result["metrics"] = scored["per_qtype"]
    result["per_video"] = scored["per_video"]
    result["missing_predictions"] = scored["missing_predictions"]
    write_json_atomic(result, args.out / "result.json")
    return result


if __name__ == "__main__":
    from videoglamm.cli.entry import run_script

    sys.exit(run_script("vg.py", main))
