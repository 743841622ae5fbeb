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
    with PredictionWriter(stream, out_dir, fps=fps, extra=extra) as writer:
        for index, frame, masks, scores in tqdm(
            stream.with_frames(), total=stream.num_frames, desc="frames", unit="frame", disable=not progress
        ):
            writer.add(index, frame, masks, scores)
    return writer.path


class PredictionWriter:
    """Writes one prediction frame by frame (`add`), for callers that report progress between frames.

    Everything goes to a temporary sibling of `out_dir`, renamed onto it when the `with` block ends
    normally; on any exception (a closed generator too) the temporary folder is removed.

    Args:
        stream: the prediction whose frames are added (its text, phrases and sizes go into result.json).
        out_dir: the folder to create (replaced if it exists).
        fps: frame rate of the overlay video.
        extra: more fields for result.json.
    """

    def __init__(self, stream: "StreamingPrediction", out_dir: str | Path, *, fps: float = 8.0,
                 extra: dict[str, Any] | None = None) -> None:
        self.path = Path(out_dir)
        self._stream, self._fps, self._extra = stream, fps, extra or {}
        self._tmp: Path | None = None
        self._commit: Any = None
        self._writer: VideoWriter | None = None
        k = stream.num_objects
        self._rles: list[list[dict[str, Any]]] = [[] for _ in range(k)]
        self._scores: list[list[float]] = [[] for _ in range(k)]

    def __enter__(self) -> "PredictionWriter":
        self._tmp, self._commit = atomic_dir(self.path)
        try:
            (self._tmp / "answer.txt").write_text(self._stream.text + "\n")
            for obj in range(self._stream.num_objects):
                (self._tmp / "masks" / str(obj)).mkdir(parents=True)
            self._writer = VideoWriter(self._tmp / "overlay.mp4", self._fps)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        return self

    def add(self, index: int, frame: Any, masks: Any, scores: Any) -> np.ndarray:
        """Write frame `index`: masks bool (K, H, W), scores (K,), frame uint8 (H, W, 3).

        Returns:
            The overlay frame written to overlay.mp4, uint8 (H, W, 3).
        """
        assert self._tmp is not None and self._writer is not None, "use PredictionWriter in a `with` block"
        masks_np = np.asarray(masks, dtype=bool)
        for obj in range(self._stream.num_objects):
            Image.fromarray(masks_np[obj].astype(np.uint8) * 255).save(self._tmp / "masks" / str(obj) / f"{index:05d}.png")
            self._rles[obj].append(rle_encode(masks_np[obj]))
            self._scores[obj].append(float(scores[obj]))
        image = overlay(np.asarray(frame), masks_np, self._stream.phrases)
        self._writer.write(image)
        return image

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        assert self._tmp is not None and self._writer is not None
        try:
            self._writer.close()
            if exc_type is None:
                (self._tmp / "result.json").write_text(json.dumps(self._result()) + "\n")
                self._commit()
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        if exc_type is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def _result(self) -> dict[str, Any]:
        stream, k = self._stream, self._stream.num_objects
        return {
            "text": stream.text,
            "phrases": stream.phrases,
            "frame_indices": stream.frame_indices,
            "num_frames": stream.num_frames,
            "size": list(stream.size),
            "objects": [{"id": obj, "phrase": stream.phrases[obj] if obj < len(stream.phrases) else None,
                         "masks": self._rles[obj], "scores": self._scores[obj]} for obj in range(k)],
            **self._extra,
        }
