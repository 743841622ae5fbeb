"""Video grounded conversation generation (GCG): caption answers with one `[SEG]` per grounded phrase.

`PhraseGCGReader` reads the MeViS / Ref-YTVOS / VidSTG / HC-STVG GCG sets: one JSON per video,
`{"caption": "... [noun phrase](id1, id2) ..."}`, whose ids index the source dataset's masks::

    Ref-YTVOS: captions_dir/<video>.json + <split>/JPEGImages/<video>/ + <split>/Annotations/<video>/
    MeViS:     captions_dir/<video>.json + <split>/JPEGImages/<video>/ + <split>/mask_dict.json
    VidSTG / HC-STVG: <split>_captions/<video>.json + <split>/<video>/frames/*.jpg
                      + <split>/<video>/masks/<obj:03d>/<frame>.png

`BurstYTVISGCGReader` reads the BURST + YTVIS-2019 `dense_cap` JSON. Frames are uniform over the
video, with each grounded object's presence frame swapped in when the grid misses it, always sorted
(the official YTVOS-GCG loader shuffled them).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from videoglamm.data.base import BadSampleError, ReaderBase
from videoglamm.data.io import check_mask_size, decode_rle, list_frames, load_rgb, read_json
from videoglamm.data.readers.masks import MaskSource, ObjectPNGMasks, PaletteMasks, RLEMasks, require_present
from videoglamm.data.sampling import covering_indices, uniform_indices
from videoglamm.data.schema import Sample
from videoglamm.data.templates import gcg_question, phrase_caption_to_answer, word_caption_to_answer
from videoglamm.errors import DatasetError


class PhraseGCGReader(ReaderBase):
    """GCG captions in the `[phrase](ids)` style over any `MaskSource`.

    Args:
        captions_dir: folder of `<video>.json` files with a "caption" key.
        frames_root: frames of video v are the images in `frames_root/v/frames_subdir`.
        mask_source: where the object ids of the captions are looked up.
        frames_subdir: "" for YTVOS/MeViS, "frames" for VidSTG/HC-STVG.
        num_frames: frames per sample (None: all).
        dataset_name, max_bad_fraction, seed: see `ReaderBase`.

    Raises:
        DatasetError: `captions_dir` is missing or holds no JSON.
    """

    def __init__(self, captions_dir: Path, frames_root: Path, mask_source: MaskSource, *,
                 frames_subdir: str = "", num_frames: int | None = 8, dataset_name: str = "ytvos_gcg",
                 max_bad_fraction: float = 0.05, seed: int = 0) -> None:
        super().__init__(dataset_name, max_bad_fraction=max_bad_fraction, seed=seed)
        captions_dir = Path(captions_dir)
        if not captions_dir.is_dir():
            raise DatasetError(f"{dataset_name}: caption folder {captions_dir} does not exist")
        self.frames_root, self.frames_subdir = Path(frames_root), frames_subdir
        self.mask_source, self.num_frames = mask_source, num_frames
        self._records = sorted(captions_dir.glob("*.json"))
        self._finish_index()

    @classmethod
    def ytvos(cls, captions_dir: Path, split_root: Path, **kwargs) -> "PhraseGCGReader":
        """Ref-YTVOS GCG; `split_root` holds JPEGImages/ and Annotations/ (also the synth layout)."""
        split_root = Path(split_root)
        kwargs.setdefault("dataset_name", "ytvos_gcg")
        masks = PaletteMasks(split_root / "Annotations")
        return cls(captions_dir, split_root / "JPEGImages", masks, **kwargs)

    @classmethod
    def mevis(cls, captions_dir: Path, split_root: Path, **kwargs) -> "PhraseGCGReader":
        """MeViS GCG; `split_root` holds JPEGImages/ and mask_dict.json."""
        split_root = Path(split_root)
        kwargs.setdefault("dataset_name", "mevis_gcg")
        return cls(captions_dir, split_root / "JPEGImages", RLEMasks(split_root / "mask_dict.json"), **kwargs)

    @classmethod
    def stvg(cls, captions_dir: Path, split_root: Path, **kwargs) -> "PhraseGCGReader":
        """VidSTG or HC-STVG GCG; `split_root/<video>/` holds frames/ and masks/."""
        kwargs.setdefault("dataset_name", "vidstg_gcg")
        masks = ObjectPNGMasks(Path(split_root))
        return cls(captions_dir, split_root, masks, frames_subdir="frames", **kwargs)

    def _caption(self, record: Path) -> tuple[str, list[list[str]]]:
        data = read_json(record)
        caption = data.get("caption") if isinstance(data, dict) else None
        if not isinstance(caption, str):
            raise BadSampleError(f"{record} has no string 'caption'")
        answer, id_groups = phrase_caption_to_answer(caption)
        if not id_groups:
            raise BadSampleError(f"caption in {record} has no '[phrase](ids)' group to ground")
        return answer, id_groups

    def text_pair(self, record: Path, rng: random.Random) -> tuple[str, str]:
        """The (question, answer) of one caption file without loading frames (`_load` draws the same).

        Raises:
            BadSampleError: the caption is missing or grounds nothing.
        """
        return gcg_question(rng), self._caption(record)[0]

    def _load(self, record: Path, rng: random.Random) -> Sample:
        answer, id_groups = self._caption(record)
        video = record.stem
        paths = list_frames(self.frames_root / video / self.frames_subdir)
        indices = uniform_indices(len(paths), self.num_frames)
        frames, masks = self._frames_and_masks(video, paths, indices, id_groups)
        if not all(masks[k].any() for k in range(len(id_groups))):
            # Rare: an object the uniform grid misses. Find where each is present and cover it.
            _, full = self._frames_and_masks(video, paths, list(range(len(paths))), id_groups)
            required = [np.flatnonzero(full[k].any(axis=(1, 2))) for k in range(len(id_groups))]
            indices = covering_indices(len(paths), self.num_frames, required)
            frames, masks = self._frames_and_masks(video, paths, indices, id_groups)
        require_present(masks, [f"object(s) {', '.join(g)} of caption {record}" for g in id_groups],
                        f"video {self.frames_root / video}")
        return Sample(frames=frames, prompt=gcg_question(rng), answer=answer, masks=torch.from_numpy(masks),
                      task="gcg", source=f"{self.dataset_name}/{video}", frame_indices=indices,
                      meta={"video": video})

    def _frames_and_masks(self, video: str, paths: list[Path], indices: Sequence[int],
                          id_groups: list[list[str]]) -> tuple[list, np.ndarray]:
        frames = [load_rgb(paths[i]) for i in indices]
        names = [paths[i].stem for i in indices]
        return frames, self.mask_source.load(video, indices, names, frames, id_groups)


class BurstYTVISGCGReader(ReaderBase):
    """BURST + YTVIS-2019 GCG (`video_gcg/instruction_data/<split>.json`).

    Each video has `file_names`, `width`, `height`, `length` and `dense_cap` = {caption, token_pos,
    mask_id}: the words at `token_pos` are grounded by the annotation `mask_id` at the same position
    (several ids on one word are OR-merged). `annotations[]` = {id, segmentations: RLE or null per frame}.

    Args:
        json_path: the instruction JSON.
        burst_frames_root: root of BURST `file_names` (e.g. `burst/frames/train`).
        ytvis_frames_root: root of YTVIS-2019 `file_names` (entries whose dataset is "yt19").
        num_frames, dataset_name, max_bad_fraction, seed: see `PhraseGCGReader`.
    """

    def __init__(self, json_path: Path, burst_frames_root: Path, ytvis_frames_root: Path, *,
                 num_frames: int | None = 8, dataset_name: str = "burst_ytvis_gcg",
                 max_bad_fraction: float = 0.05, seed: int = 0) -> None:
        super().__init__(dataset_name, max_bad_fraction=max_bad_fraction, seed=seed)
        self.json_path, self.num_frames = Path(json_path), num_frames
        self.roots = {"burst": Path(burst_frames_root), "yt19": Path(ytvis_frames_root)}
        try:
            data = read_json(self.json_path)
        except BadSampleError as err:
            raise DatasetError(f"{dataset_name}: {err}") from None
        self.annotations = {ann["id"]: ann for ann in data.get("annotations", [])}
        self._records = list(data.get("videos", []))
        self._finish_index()

    def _record_key(self, record: dict) -> str:
        return f"{self.json_path} video {record.get('id', record.get('file_names', ['?'])[0])}"

    def _load(self, record: dict, rng: random.Random) -> Sample:
        try:
            cap = record["dense_cap"]
            caption, token_pos, mask_ids = cap["caption"], list(cap["token_pos"]), list(cap["mask_id"])
            files, length = record["file_names"], int(record["length"])
        except (KeyError, TypeError, ValueError) as err:
            raise BadSampleError(f"video entry in {self.json_path} lacks {err}") from None
        if not token_pos or len(token_pos) != len(mask_ids) or max(token_pos) >= len(caption.split(" ")):
            raise BadSampleError(f"{self._record_key(record)}: token_pos {token_pos} does not match mask_id "
                                 f"{mask_ids} or the {len(caption.split(' '))} words of its caption")
        dataset = (record.get("metadata") or {}).get("dataset", record.get("dataset_split"))
        root = self.roots["yt19" if dataset == "yt19" else "burst"]
        groups: dict[int, list] = {}
        for pos, mask_id in zip(token_pos, mask_ids):
            groups.setdefault(pos, []).append(mask_id)
        ordered = [groups[pos] for pos in sorted(groups)]
        segs = []
        for group in ordered:
            missing = [m for m in group if m not in self.annotations]
            if missing:
                raise BadSampleError(f"mask ids {missing} of {self._record_key(record)} have no annotation")
            segs.append([self.annotations[m]["segmentations"] for m in group])
        if len(files) < length or any(len(s) < length for group_segs in segs for s in group_segs):
            raise BadSampleError(f"{self._record_key(record)}: fewer file_names or segmentations than its "
                                 f"length {length}")
        required = [[t for t in range(length) if any(s[t] is not None for s in group_segs)]
                    for group_segs in segs]
        indices = covering_indices(length, self.num_frames, required)
        frames = [load_rgb(root / files[i]) for i in indices]
        masks = np.zeros((len(segs), len(indices), frames[0].height, frames[0].width), dtype=bool)
        for k, group_segs in enumerate(segs):
            for t, i in enumerate(indices):
                for s in group_segs:
                    if s[i] is not None:
                        mask = decode_rle(s[i], f"{self.json_path} ({files[i]})")
                        check_mask_size(mask, frames[t], f"{self.json_path} ({files[i]})")
                        masks[k, t] |= mask
        require_present(masks, [f"mask ids {g}" for g in ordered], self._record_key(record))
        video = str(Path(files[0]).parent)
        answer = word_caption_to_answer(caption, token_pos)
        return Sample(frames=frames, prompt=gcg_question(rng), answer=answer, masks=torch.from_numpy(masks),
                      task="gcg", frame_indices=indices, source=f"{self.dataset_name}/{video}",
                      meta={"video": video})
