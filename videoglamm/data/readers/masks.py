"""Mask sources of the real formats, shared by the referring and the GCG readers.

Each source turns (video, sampled frames, groups of object ids) into a bool (K, T, H, W) array: one
mask per group, the union of the group's objects, at the frame resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
from PIL import Image

from videoglamm.data.base import BadSampleError
from videoglamm.data.io import check_mask_size, decode_rle, load_binary_png, load_index_png, read_json


class MaskSource(Protocol):
    def load(self, video: str, frame_indices: Sequence[int], frame_names: Sequence[str],
             frames: Sequence[Image.Image], id_groups: Sequence[Sequence[str]]) -> np.ndarray:
        """Return bool (len(id_groups), T, H, W) masks for the sampled frames."""
        ...


class PaletteMasks:
    """Ref-YouTube-VOS / Ref-DAVIS17: `masks_root/<video>/<frame>.png`, pixel value = object id."""

    def __init__(self, masks_root: Path) -> None:
        self.masks_root = Path(masks_root)

    def load(self, video, frame_indices, frame_names, frames, id_groups) -> np.ndarray:
        height, width = frames[0].height, frames[0].width
        out = np.zeros((len(id_groups), len(frames), height, width), dtype=bool)
        ids = [np.array([int(i) for i in group], dtype=np.int64) for group in id_groups]
        for t, (name, frame) in enumerate(zip(frame_names, frames)):
            path = self.masks_root / video / f"{name}.png"
            labels = load_index_png(path)
            check_mask_size(labels, frame, path)
            for k, group in enumerate(ids):
                out[k, t] = np.isin(labels, group)
        return out


class RLEMasks:
    """MeViS: `mask_dict.json` maps an annotation id to a per-frame list of COCO RLE (null = absent)."""

    def __init__(self, mask_dict_path: Path) -> None:
        self.mask_dict_path = Path(mask_dict_path)
        self._masks: dict | None = None  # loaded on first use: the real file is several hundred MB

    def _dict(self) -> dict:
        if self._masks is None:
            self._masks = read_json(self.mask_dict_path)
        return self._masks

    def load(self, video, frame_indices, frame_names, frames, id_groups) -> np.ndarray:
        height, width = frames[0].height, frames[0].width
        out = np.zeros((len(id_groups), len(frames), height, width), dtype=bool)
        masks = self._dict()
        for k, group in enumerate(id_groups):
            for anno_id in group:
                per_frame = masks.get(str(anno_id))
                if per_frame is None:
                    raise BadSampleError(
                        f"annotation id {anno_id} of video {video} is not in {self.mask_dict_path}")
                for t, (index, frame) in enumerate(zip(frame_indices, frames)):
                    if index >= len(per_frame):
                        raise BadSampleError(f"annotation {anno_id} in {self.mask_dict_path} has "
                                             f"{len(per_frame)} frames, video {video} needs frame {index}")
                    if per_frame[index] is None:
                        continue
                    where = f"{self.mask_dict_path} [{anno_id}][{index}]"
                    mask = decode_rle(per_frame[index], where)
                    check_mask_size(mask, frame, where)
                    out[k, t] |= mask
        return out


class ObjectPNGMasks:
    """VidSTG / HC-STVG GCG: `root/<video>/masks/<obj:03d>/<frame>.png`, one binary PNG per object.

    A missing PNG inside an existing object folder means the object is not in that frame; a missing
    object folder makes the sample bad.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def load(self, video, frame_indices, frame_names, frames, id_groups) -> np.ndarray:
        height, width = frames[0].height, frames[0].width
        out = np.zeros((len(id_groups), len(frames), height, width), dtype=bool)
        for k, group in enumerate(id_groups):
            for obj in group:
                folder = self.root / video / "masks" / f"{int(obj):03d}"
                if not folder.is_dir():
                    raise BadSampleError(f"missing mask folder {folder} for object {obj}")
                for t, (name, frame) in enumerate(zip(frame_names, frames)):
                    path = folder / f"{name}.png"
                    if path.exists():
                        mask = load_binary_png(path)
                        check_mask_size(mask, frame, path)
                        out[k, t] |= mask
        return out


def require_present(masks: np.ndarray, what: Sequence[str], where: str) -> None:
    """Raise `BadSampleError` if any mask k is empty on every sampled frame (`what[k]` names it)."""
    for k, name in enumerate(what):
        if not masks[k].any():
            raise BadSampleError(f"{name} never appears in the {masks.shape[1]} sampled frames of {where}")
