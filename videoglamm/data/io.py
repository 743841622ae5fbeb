"""File readers that turn every per-file failure into a `BadSampleError` naming the file.

Only the specific decode/IO errors of each format are converted; anything else is a bug and propagates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from videoglamm.data.base import BadSampleError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def load_rgb(path: Path) -> Image.Image:
    """Read an image file as RGB.

    Raises:
        BadSampleError: the file is missing, truncated or not an image.
    """
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise BadSampleError(f"missing frame file {path}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise BadSampleError(f"unreadable image {path}: {err}") from None


def load_index_png(path: Path) -> np.ndarray:
    """Read a palette (or grayscale) PNG of object ids as an (H, W) uint8 array.

    Raises:
        BadSampleError: the file is missing, unreadable, or holds colours instead of ids.
    """
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L", "1"):
                raise BadSampleError(
                    f"mask {path} has mode {image.mode}; expected a palette PNG of object ids")
            return np.array(image.convert("L") if image.mode == "1" else image, dtype=np.uint8)
    except FileNotFoundError:
        raise BadSampleError(f"missing mask file {path}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise BadSampleError(f"unreadable mask {path}: {err}") from None


def load_binary_png(path: Path) -> np.ndarray:
    """Read a 0/255 (or 0/1) mask PNG as an (H, W) bool array."""
    return load_index_png(path) > 0


def check_mask_size(mask: np.ndarray, frame: Image.Image, mask_name: str | Path) -> None:
    """Raise `BadSampleError` when a mask and its frame differ in size (both sizes named)."""
    if mask.shape != (frame.height, frame.width):
        raise BadSampleError(
            f"mask {mask_name} is {mask.shape[1]}x{mask.shape[0]} (WxH) but its frame is "
            f"{frame.width}x{frame.height}; masks must have the frame resolution"
        )


def decode_rle(rle: dict, where: str) -> np.ndarray:
    """Decode one COCO RLE (compressed string or uncompressed list counts) to (H, W) bool."""
    from pycocotools import mask as mask_utils  # pycocotools is only needed by the RLE formats

    try:
        if isinstance(rle.get("counts"), list):
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        return mask_utils.decode([rle])[:, :, 0].astype(bool)
    except (KeyError, TypeError, ValueError) as err:
        raise BadSampleError(f"malformed RLE in {where}: {err!r}") from None


def decode_polygons(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons to an (H, W) bool mask."""
    from pycocotools import mask as mask_utils

    rles = mask_utils.frPyObjects(polygons, height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def read_json(path: Path) -> Any:
    """Read a whole JSON file.

    Raises:
        BadSampleError: the file is missing or not valid JSON.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise BadSampleError(f"missing JSON file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadSampleError(f"malformed JSON in {path}: {err}") from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any | BadSampleError]]:
    """Yield (line number, parsed object or the `BadSampleError` for that line), skipping blank lines."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                yield number, BadSampleError(f"malformed JSON at {path}:{number}: {err}")


def list_frames(folder: Path) -> list[Path]:
    """Image files of a frame folder in sorted (temporal) order.

    Raises:
        BadSampleError: the folder is missing or holds no image.
    """
    if not folder.is_dir():
        raise BadSampleError(f"missing frame folder {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BadSampleError(f"frame folder {folder} holds no .jpg/.png frame")
    return files
