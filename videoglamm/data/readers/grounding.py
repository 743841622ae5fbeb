"""Spatio-temporal video grounding: VidSTG and HC-STVG in the TubeDETR-processed JSON format.

Layout::

    annotations.json   {"videos": [{"video_id", "video_path", "caption", "start_frame", "end_frame",
                                    "tube_start_frame", "tube_end_frame", "original_video_id",
                                    "target_id", ...}],
                        "trajectories": {original_video_id: {target_id: {frame: {"bbox": [x, y, w, h]}}}}}
                       (HC-STVG entries may instead carry "trajectory": one [x, y, w, h] per tube frame)
    frames_root/<video_path without extension>/*.jpg   pre-extracted frames, k-th file = frame k

Frame ranges are [start, end). The sample's `boxes` are xyxy pixels (NaN outside the tube), its
`time_span` the first and last sampled positions inside the tube, and its mask the filled box
(`meta["mask_from_box"] = True`: box-level supervision, coarser than the SAM2 pseudo-masks of the
official preprocessing).
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import torch

from videoglamm.data.base import BadSampleError, ReaderBase
from videoglamm.data.io import list_frames, load_rgb, read_json
from videoglamm.data.sampling import covering_indices
from videoglamm.data.schema import Sample
from videoglamm.data.templates import vg_answer, vg_question
from videoglamm.errors import DatasetError


class STGroundingReader(ReaderBase):
    """VidSTG / HC-STVG grounding reader.

    Args:
        annotation_path: TubeDETR-style JSON (layout above).
        frames_root: root of the pre-extracted frame folders.
        num_frames: frames per sample over the clip, at least one inside the tube.
        dataset_name, max_bad_fraction, seed: see `ReaderBase`.

    Raises:
        DatasetError: the annotation file is unreadable or has no videos.
    """

    def __init__(self, annotation_path: Path, frames_root: Path, *, num_frames: int | None = 8,
                 dataset_name: str = "vidstg", max_bad_fraction: float = 0.05, seed: int = 0) -> None:
        super().__init__(dataset_name, max_bad_fraction=max_bad_fraction, seed=seed)
        self.annotation_path, self.frames_root = Path(annotation_path), Path(frames_root)
        self.num_frames = num_frames
        try:
            data = read_json(self.annotation_path)
        except BadSampleError as err:
            raise DatasetError(f"{dataset_name}: {err}") from None
        self.trajectories = data.get("trajectories", {})
        self._records = list(data.get("videos", []))
        self._finish_index()

    def _record_key(self, record: dict) -> str:
        return f"{self.annotation_path} video {record.get('video_id', record.get('video_path'))}"

    def tube_boxes(self, record: dict, tube: range) -> dict[int, list[float]]:
        """Map frame -> [x, y, w, h] for the tube frames of `record` that have a box."""
        if "trajectory" in record:
            return {f: list(box) for f, box in zip(tube, record["trajectory"]) if box}
        per_frame = self.trajectories[str(record["original_video_id"])][str(record["target_id"])]
        return {int(f): list(v["bbox"]) for f, v in per_frame.items() if int(f) in tube}

    def _load(self, record: dict, rng: random.Random) -> Sample:
        try:
            video_dir = self.frames_root / Path(record["video_path"]).with_suffix("")
            tube = range(int(record["tube_start_frame"]), int(record["tube_end_frame"]))
            caption = record["caption"]
            boxes_by_frame = self.tube_boxes(record, tube)
        except (KeyError, TypeError, ValueError) as err:
            raise BadSampleError(f"{self._record_key(record)}: missing or malformed field {err}") from None
        paths = list_frames(video_dir)
        start, end = int(record.get("start_frame", 0)), int(record.get("end_frame", len(paths)))
        if not boxes_by_frame or end > len(paths) or not start <= tube.start < tube.stop <= end:
            raise BadSampleError(f"{self._record_key(record)}: tube {tube.start}..{tube.stop} has no box or "
                                 f"lies outside clip {start}..{end} / the {len(paths)} frames in {video_dir}")
        clip_positions = covering_indices(end - start, self.num_frames, [[f - start for f in boxes_by_frame]])
        indices = [start + p for p in clip_positions]
        frames = [load_rgb(paths[i]) for i in indices]
        height, width = frames[0].height, frames[0].width
        boxes = torch.full((1, len(indices), 4), math.nan)
        masks = np.zeros((1, len(indices), height, width), dtype=bool)
        for t, i in enumerate(indices):
            if i in boxes_by_frame:
                x, y, w, h = boxes_by_frame[i]
                x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h)
                boxes[0, t] = torch.tensor([x0, y0, x1, y1])
                masks[0, t, int(y0):int(math.ceil(y1)), int(x0):int(math.ceil(x1))] = True
        inside = [t for t, i in enumerate(indices) if i in tube]
        span = (inside[0], inside[-1])
        return Sample(frames=frames, prompt=vg_question(rng, caption), answer=vg_answer(rng, *span),
                      masks=torch.from_numpy(masks), task="vg", frame_indices=indices, boxes=boxes,
                      time_span=span,
                      source=f"{self.dataset_name}/{record.get('video_id', video_dir.name)}",
                      meta={"video": str(record.get("video_path")), "mask_from_box": True,
                            "qtype": record.get("qtype")})
