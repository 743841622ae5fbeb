"""VideoInstruct-style video question answering (no masks).

Layout::

    annotations.json or .jsonl   [{"video_id": "v_abc", "q": question, "a": answer}, ...] (one per line
                                 for .jsonl; a malformed line is skipped, warned and counted)
    frames_root/<video_id>/*.jpg pre-extracted frames (e.g. ActivityNet at 1 fps)
"""

from __future__ import annotations

import random
from pathlib import Path

from videoglamm.data.base import BadSampleError, ReaderBase
from videoglamm.data.io import iter_jsonl, list_frames, load_rgb, read_json
from videoglamm.data.sampling import uniform_indices
from videoglamm.data.schema import Sample
from videoglamm.data.templates import SEG_TOKEN
from videoglamm.errors import DatasetError

_FIELDS = ("video_id", "q", "a")


class VideoQAReader(ReaderBase):
    """VideoInstruct-100K style QA reader.

    Args:
        annotation_path: `.json` list or `.jsonl` file of {"video_id", "q", "a"}.
        frames_root: root of per-video frame folders.
        num_frames: frames per sample, uniform over the video (None: all).
        dataset_name, max_bad_fraction, seed: see `ReaderBase`.

    Raises:
        DatasetError: the file is missing, a `.json` file is malformed, or too many entries are bad.
    """

    def __init__(self, annotation_path: Path, frames_root: Path, *, num_frames: int | None = 16,
                 dataset_name: str = "video_instruct", max_bad_fraction: float = 0.05, seed: int = 0) -> None:
        super().__init__(dataset_name, max_bad_fraction=max_bad_fraction, seed=seed)
        self.annotation_path, self.frames_root = Path(annotation_path), Path(frames_root)
        self.num_frames = num_frames
        if not self.annotation_path.is_file():
            raise DatasetError(f"{dataset_name}: annotation file {self.annotation_path} does not exist")
        if self.annotation_path.suffix == ".jsonl":
            entries = list(iter_jsonl(self.annotation_path))
        else:
            try:
                entries = list(enumerate(read_json(self.annotation_path), start=1))
            except BadSampleError as err:
                raise DatasetError(f"{dataset_name}: {err}") from None
        for number, entry in entries:
            key = f"{self.annotation_path}:{number}"
            if isinstance(entry, BadSampleError):
                self._index_bad(key, entry)
            elif not (isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in _FIELDS)):
                self._index_bad(key, BadSampleError(f"entry at {key} needs string 'video_id', 'q' and 'a'"))
            elif SEG_TOKEN in entry["q"] + entry["a"]:
                # A literal [SEG] in QA text would be supervised as a mask token without a mask.
                self._index_bad(key, BadSampleError(f"entry at {key} contains {SEG_TOKEN}"))
            else:
                self._records.append((key, entry))
        self._finish_index()

    def _record_key(self, record: tuple[str, dict]) -> str:
        return record[0]

    def _load(self, record: tuple[str, dict], rng: random.Random) -> Sample:
        _, entry = record
        paths = list_frames(self.frames_root / entry["video_id"])
        indices = uniform_indices(len(paths), self.num_frames)
        frames = [load_rgb(paths[i]) for i in indices]
        return Sample(frames=frames, prompt=entry["q"].strip(), answer=entry["a"].strip(), masks=None,
                      task="vqa",
                      source=f"{self.dataset_name}/{entry['video_id']}", frame_indices=indices,
                      meta={"video": entry["video_id"]})
