"""ActivityNet-Entities GCG: single-frame masks per grounded phrase inside a multi-frame segment.

Layout (`activitynet_entities_gcg/`)::

    anns/<vid>____<seg>.json          {"refined_caption": "... <p> a man </p> [SEG:12] ...",
                                       "seg_token_to_obj": {"[SEG:12]": {"frame_id": 3, "bbox": [...]}}}
    masks/<vid>____<seg>/<k:02d>/mask.png      0/255 mask of [SEG:k] on its frame
    video_frames/<vid>/<seg>/<frame_id:02d>.jpg

Each mask is annotated on one frame only, so `meta["mask_valid"]` marks that frame and the other
frames of the mask are zeros that must not be supervised. Every annotated frame is kept in the sample
(the official loader showed SAM only the first object's frame but paired it with masks from other
frames), and `[SEG:k]` with any number of digits is recognised (the official regex took one digit).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from videoglamm.data.base import BadSampleError, ReaderBase
from videoglamm.data.io import check_mask_size, list_frames, load_binary_png, load_rgb, read_json
from videoglamm.data.sampling import covering_indices
from videoglamm.data.schema import Sample
from videoglamm.data.templates import anet_caption_to_answer, gcg_question
from videoglamm.errors import DatasetError


class ANetEntitiesGCGReader(ReaderBase):
    """ANet-Entities GCG reader.

    Args:
        root: the `activitynet_entities_gcg` folder.
        num_frames: frames per sample, uniform over the segment plus every annotated frame.
        dataset_name, max_bad_fraction, seed: see `ReaderBase`.

    Raises:
        DatasetError: `root/anns` is missing or empty.
    """

    def __init__(self, root: Path, *, num_frames: int | None = 8, dataset_name: str = "anet_gcg",
                 max_bad_fraction: float = 0.05, seed: int = 0) -> None:
        super().__init__(dataset_name, max_bad_fraction=max_bad_fraction, seed=seed)
        self.root, self.num_frames = Path(root), num_frames
        if not (self.root / "anns").is_dir():
            raise DatasetError(f"{dataset_name}: {self.root / 'anns'} does not exist; pass the "
                               "activitynet_entities_gcg folder")
        self._records = sorted((self.root / "anns").glob("*.json"))
        self._finish_index()

    def _load(self, record: Path, rng: random.Random) -> Sample:
        name = record.stem
        if "____" not in name:
            raise BadSampleError(f"{record}: file name is not <video>____<segment>.json")
        vid, seg = name.split("____", 1)
        data = read_json(record)
        try:
            answer, keys = anet_caption_to_answer(data["refined_caption"])
            objects = {key: int(data["seg_token_to_obj"][key]["frame_id"]) for key in set(keys)}
        except (KeyError, TypeError, ValueError) as err:
            raise BadSampleError(f"{record}: missing or malformed caption/seg_token_to_obj entry {err}") \
                from None
        if not keys:
            raise BadSampleError(f"{record}: caption has no [SEG:k] to ground")
        paths = list_frames(self.root / "video_frames" / vid / seg)
        position = {p.stem: i for i, p in enumerate(paths)}
        frame_pos = {}
        for key, frame_id in objects.items():
            stem = f"{frame_id:02d}"
            if stem not in position:
                missing = paths[0].parent / f"{stem}.jpg"
                raise BadSampleError(f"missing frame file {missing} for {key} in {record}")
            frame_pos[key] = position[stem]
        indices = covering_indices(len(paths), self.num_frames, [[p] for p in frame_pos.values()])
        frames = [load_rgb(paths[i]) for i in indices]
        masks = np.zeros((len(keys), len(indices), frames[0].height, frames[0].width), dtype=bool)
        valid = np.zeros((len(keys), len(indices)), dtype=bool)
        for k, key in enumerate(keys):
            t = indices.index(frame_pos[key])
            path = self.root / "masks" / name / f"{int(key[5:-1]):02d}" / "mask.png"
            mask = load_binary_png(path)
            check_mask_size(mask, frames[t], path)
            if not mask.any():
                raise BadSampleError(f"mask {path} of {key} is empty")
            masks[k, t], valid[k, t] = mask, True
        return Sample(frames=frames, prompt=gcg_question(rng), answer=answer, masks=torch.from_numpy(masks),
                      task="gcg", source=f"{self.dataset_name}/{name}", frame_indices=indices,
                      meta={"video": vid, "segment": seg, "mask_valid": torch.from_numpy(valid)})
