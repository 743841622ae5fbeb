"""Writing a prediction to disk as it streams: answer, result JSON with COCO RLE masks, PNGs, overlay mp4.

Everything goes to a temporary sibling folder that is renamed onto the output folder when complete, so
an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from videoglamm.modeling.persistence import atomic_dir
from videoglamm.visualize import VideoWriter, overlay

if TYPE_CHECKING:
    from videoglamm.modeling.predict import StreamingPrediction


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """bool (H, W) -> COCO RLE with a str `counts` (JSON-ready)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(x) for x in rle["size"]], "counts": rle["counts"].decode("ascii")}


def write_prediction(
    stream: "StreamingPrediction", out_dir: str | Path, *, fps: float = 8.0, progress: bool = True,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Consume `stream`, writing `answer.txt`, `result.json`, `masks/<k>/<frame>.png` and `overlay.mp4`.

    Args:
        stream: from `VideoGLaMM.predict_stream` or `SAMWISE.predict_stream`.
        out_dir: the folder to create (replaced if it exists).
        fps: frame rate of the overlay video.
        progress: show a progress bar over frames.
        extra: more fields for result.json (e.g. the prompt and the model name).

    Returns:
        The output folder.
    """
    final = Path(out_dir)
    tmp, commit = atomic_dir(final)
    try:
        k = stream.num_objects
        (tmp / "answer.txt").write_text(stream.text + "\n")
        for obj in range(k):
            (tmp / "masks" / str(obj)).mkdir(parents=True)
        rles: list[list[dict[str, Any]]] = [[] for _ in range(k)]
        scores: list[list[float]] = [[] for _ in range(k)]
        with VideoWriter(tmp / "overlay.mp4", fps) as writer:
            for index, frame, masks, frame_scores in tqdm(
                stream.with_frames(), total=stream.num_frames, desc="frames", unit="frame", disable=not progress
            ):
                masks_np = masks.numpy()
                for obj in range(k):
                    Image.fromarray(masks_np[obj].astype(np.uint8) * 255).save(tmp / "masks" / str(obj) / f"{index:05d}.png")
                    rles[obj].append(rle_encode(masks_np[obj]))
                    scores[obj].append(float(frame_scores[obj]))
                writer.write(overlay(frame.numpy(), masks_np, stream.phrases))
        result = {
            "text": stream.text,
            "phrases": stream.phrases,
            "frame_indices": stream.frame_indices,
            "num_frames": stream.num_frames,
            "size": list(stream.size),
            "objects": [{"id": obj, "phrase": stream.phrases[obj] if obj < len(stream.phrases) else None,
                         "masks": rles[obj], "scores": scores[obj]} for obj in range(k)],
            **(extra or {}),
        }
        (tmp / "result.json").write_text(json.dumps(result) + "\n")
        commit()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
