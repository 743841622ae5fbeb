"""A folder of frame images (.jpg/.jpeg/.png, in name order) read on demand, like `VideoFile`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from videoglamm.errors import ShapeMismatchError, VideoReadError

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


class FrameFolder:
    """The frames of a folder, sorted by file name; each is decoded when asked for (RGB uint8).

    Raises:
        VideoReadError: the folder is missing or holds no .jpg/.jpeg/.png file.
    """

    fps = None  # a folder carries no frame rate: every frame is in the encoder pool

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise VideoReadError(f"frame folder not found: {self.path}")
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file())
        if not self.files:
            raise VideoReadError(f"frame folder {self.path} holds no {'/'.join(FRAME_SUFFIXES)} file")
        self._size: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, index: int) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        path = self.files[index]
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as err:
            raise VideoReadError(f"cannot read frame {path}: {err}") from err
        if self._size is None:
            self._size = array.shape
        elif array.shape != self._size:
            raise ShapeMismatchError(f"frame {path} is {array.shape[:2]} but the folder's first frame is "
                                     f"{self._size[:2]}; resize the frames to one size first")
        return torch.from_numpy(array.copy())

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames at `indices` as uint8 (len(indices), H, W, 3)."""
        return torch.stack([self._read(i) for i in indices])

    def iter_frames(self) -> Iterator[torch.Tensor]:
        """Yield the frames one at a time, uint8 (H, W, 3)."""
        for i in range(len(self)):
            yield self._read(i)
