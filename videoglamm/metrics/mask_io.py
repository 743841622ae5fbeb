"""Reading masks from disk for scoring: PNG label maps, DAVIS-style folders and the MeViS split files.

Layouts:

* DAVIS-style: `<root>/<sequence>/<frame>.png`, palette ("P") or grayscale PNGs whose pixel values
  (palette indices for "P") are object ids; 0 is background and 255 in the GT is void.
* MeViS split: `<split>/meta_expressions.json` (`{"videos": {video: {"frames": [...],
  "expressions": {exp_id: {"exp": str, "anno_id": [...], "obj_id": [...]}}}}}`) and
  `<split>/mask_dict.json` (`{str(anno_id): [COCO RLE or null per frame]}`).
* MeViS predictions: `<pred>/<video>/<exp_id>/<frame>.png`; any non-zero value is foreground.

A missing prediction file reads as an empty mask and is returned in a `missing` list so callers can
report it (the official MeViS tool silently drops the expression instead). A prediction whose size
differs from the GT raises `ShapeMismatchError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np

from videoglamm.errors import DatasetError, InputError, ShapeMismatchError
from videoglamm.metrics.windows import ArrayMask, WindowMask

__all__ = [
    "read_mask_png",
    "read_frames",
    "PngMask",
    "read_mask",
    "iter_masks",
    "list_sequences",
    "list_frames",
    "MevisSplit",
    "load_mevis_split",
]

T = TypeVar("T")


def read_mask_png(path: str | os.PathLike) -> np.ndarray:
    """Reads one mask PNG as a label map.

    Args:
        path: PNG file in mode "P" (palette indices), "L", "1" or "I;16".

    Returns:
        (H, W) uint8 (uint16 for 16-bit files) array of ids / values.

    Raises:
        FileNotFoundError: if the file does not exist.
        InputError: for colour images, whose ids are ambiguous.
    """
    arr = _png_pixels(path)
    return arr if arr.flags.writeable else arr.copy()


def _png_pixels(path: str | os.PathLike) -> np.ndarray:
    """`read_mask_png` without its final copy: the array may be a read-only view of Pillow's bytes."""
    with _decoding(path):
        from PIL import Image

        with Image.open(path) as img:
            if img.format != "PNG":
                raise InputError(f"{path} is a {img.format} image, not a PNG; masks must be lossless PNGs")
            return _image_pixels(img, path)


@contextlib.contextmanager
def _decoding(path: str | os.PathLike) -> Iterator[None]:
    """A mask file that is not a complete image (truncated, another format, garbage) is an InputError naming
    it; a missing file stays a FileNotFoundError (callers treat missing predictions as empty)."""
    from PIL import UnidentifiedImageError

    try:
        yield
    except (FileNotFoundError, InputError):
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"cannot read mask {path}: {err}; is it a complete PNG file?") from None


def _image_pixels(img: Any, path: str | os.PathLike) -> np.ndarray:
    if img.mode in ("P", "L"):
        # load() + asarray: one copy (Pillow's tobytes) instead of two for np.array(img, dtype).
        img.load()
        return np.asarray(img)
    if img.mode == "1":
        return np.array(img, dtype=np.uint8)
    if img.mode.startswith("I;16"):
        return np.array(img, dtype=np.uint16)
    raise InputError(
        f"{path}: mask PNG has mode {img.mode!r}; save masks as palette ('P') or grayscale ('L') "
        "PNGs whose pixel values are object ids"
    )


class PngMask:
    """A decoded palette, grayscale or 1-bit mask PNG kept as a Pillow image (a `WindowMask`; any
    non-zero value or palette index is foreground).

    Converting a whole frame to numpy (Pillow's `tobytes` copies every pixel into fresh buffers,
    which page-fault on every frame) took about 0.7 ms per 480p frame, half the decode itself.
    Pillow finds the foreground box and crops in C instead, so only the scoring window becomes an
    array.
    """

    def __init__(self, image: Any) -> None:
        """Args:
            image: a loaded PIL image in mode "P", "L" or "1".
        """
        self.image = image
        self.width, self.height = image.size
        bbox = image.getbbox()  # (left, upper, right, lower), right and lower exclusive
        self._box = None if bbox is None else (bbox[1], bbox[3] - 1, bbox[0], bbox[2] - 1)

    def box(self) -> tuple[int, int, int, int] | None:
        return self._box

    def transposed_window(self, rows: slice, cols: slice) -> np.ndarray:
        window = np.asarray(self.image.crop((cols.start, rows.start, cols.stop, rows.stop)))
        out = np.empty((cols.stop - cols.start, rows.stop - rows.start), dtype=bool)
        return np.not_equal(window.T, 0, out=out)


def read_mask(path: str | os.PathLike) -> WindowMask:
    """Reads one mask PNG for scoring (see `PngMask`); 16-bit files become an `ArrayMask`.

    Raises:
        FileNotFoundError: if the file does not exist.
        InputError: for colour images, whose ids are ambiguous.
    """
    from PIL import Image

    with _decoding(path), Image.open(path) as img:
        if img.format != "PNG":
            raise InputError(f"{path} is a {img.format} image, not a PNG; masks must be lossless PNGs")
        if img.mode in ("P", "L", "1"):
            img.load()
            return PngMask(img)
        return ArrayMask(_image_pixels(img, path))


def read_frames(
    paths: Sequence[Path], shape: tuple[int, int] | None = None, allow_missing: bool = False
) -> tuple[np.ndarray, list[str]]:
    """Reads a stack of mask PNGs.

    Args:
        paths: one path per frame.
        shape: expected (H, W); defaults to the first file read.
        allow_missing: missing files become empty masks (and are listed) instead of raising.

    Returns:
        ((T, H, W) array, list of missing paths).

    Raises:
        FileNotFoundError: a file is missing and `allow_missing` is False.
        ShapeMismatchError: a file's size differs from `shape` (the message names the file).
        InputError: no file could be read and `shape` is unknown.
    """
    exists = [p.is_file() for p in paths]
    missing = [str(p) for p, ok in zip(paths, exists) if not ok]
    if missing and not allow_missing:
        raise FileNotFoundError(f"mask file not found: {missing[0]}")
    present = [p for p, ok in zip(paths, exists) if ok]
    # Plain loop: callers already overlap reading with scoring (a prefetch thread or worker
    # processes); a thread pool here only added GIL hand-offs.
    arrays = [_png_pixels(p) for p in present]
    if shape is None:
        if not arrays:
            raise InputError(f"no mask files found among {len(paths)} expected, e.g. {paths[0]}")
        shape = arrays[0].shape
    dtype = np.result_type(np.uint8, *[a.dtype for a in arrays]) if arrays else np.uint8
    stack = np.zeros((len(paths), *shape), dtype=dtype)
    it = iter(zip(present, arrays))
    for t, ok in enumerate(exists):
        if not ok:
            continue
        path, arr = next(it)
        _check_size(path, arr.shape, shape)
        stack[t] = arr
    return stack, missing


def iter_masks(
    paths: Sequence[Path], shape: tuple[int, int], missing: list[str] | None = None, threads: int = 0
) -> Iterator[WindowMask | None]:
    """Reads mask PNGs in order (`read_mask`), for callers that score frame by frame.

    Args:
        paths: one path per frame.
        shape: expected (H, W).
        missing: if given, the paths of missing files are appended to it as they are met.
        threads: with threads > 0, up to 2 * threads files are read ahead in a thread pool while the
            caller works on the current one (Pillow decodes without holding the GIL).

    Yields:
        Per path, the mask, or None when the file does not exist.

    Raises:
        ShapeMismatchError: a file's size differs from `shape` (the message names the file).
        InputError: a colour PNG (see `read_mask_png`).
    """

    def read(path: Path) -> WindowMask | None:
        if not path.is_file():
            return None
        mask = read_mask(path)
        _check_size(path, (mask.height, mask.width), shape)
        return mask

    for path, mask in zip(paths, _read_ahead(read, paths, threads)):
        if mask is None and missing is not None:
            missing.append(str(path))
        yield mask


def _read_ahead(read: Callable[[Path], T], paths: Sequence[Path], threads: int) -> Iterator[T]:
    """`map(read, paths)`, with up to 2 * threads calls running ahead in a thread pool."""
    if threads <= 0:
        yield from map(read, paths)
        return
    with ThreadPoolExecutor(threads) as pool:
        ahead = deque(pool.submit(read, p) for p in paths[: 2 * threads])
        for nxt in paths[2 * threads :]:
            result = ahead.popleft().result()
            ahead.append(pool.submit(read, nxt))
            yield result
        while ahead:
            yield ahead.popleft().result()


def _check_size(path: Path, size: tuple[int, ...], shape: tuple[int, ...]) -> None:
    if tuple(size) != tuple(shape):
        raise ShapeMismatchError(
            f"{path}: mask is {size[1]}x{size[0]} (WxH) but the GT frame is "
            f"{shape[1]}x{shape[0]}; predictions must have the GT resolution"
        )


def list_sequences(root: str | os.PathLike, only: Sequence[str] | None = None) -> list[str]:
    """Sequence folders of a DAVIS-style root, sorted, optionally restricted to `only`.

    Raises:
        FileNotFoundError: if the root or a requested sequence does not exist.
        DatasetError: if the root holds no sequence folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"GT folder not found: {root}")
    if only:
        for seq in only:
            if not (root / seq).is_dir():
                raise FileNotFoundError(f"sequence {seq!r} not found in {root}")
        return list(only)
    seqs = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not seqs:
        raise DatasetError(f"{root} holds no sequence folders (<root>/<sequence>/<frame>.png)")
    return seqs


def list_frames(seq_dir: Path) -> list[str]:
    """Frame names (file stems) of the PNGs in a sequence folder, sorted.

    Raises:
        DatasetError: if the folder holds no PNG.
    """
    frames = sorted(p.stem for p in seq_dir.glob("*.png"))
    if not frames:
        raise DatasetError(f"{seq_dir} holds no .png frames")
    return frames


class MevisSplit:
    """A MeViS-format split: expression metadata plus per-object RLE masks."""

    def __init__(self, meta: dict[str, Any], mask_dict: dict[str, list[Any]], root: Path) -> None:
        self.videos: dict[str, Any] = meta["videos"]
        self.mask_dict = mask_dict
        self.root = root

    def expressions(self, videos: Sequence[str] | None = None) -> list[tuple[str, str]]:
        """(video, expression id) pairs in file order, optionally for some videos only.

        Raises:
            DatasetError: if a requested video is not in the split.
        """
        names = list(self.videos) if not videos else list(videos)
        for video in names:
            if video not in self.videos:
                raise DatasetError(f"video {video!r} is not in {self.root / 'meta_expressions.json'}")
        return [(v, e) for v in names for e in self.videos[v]["expressions"]]

    def frames(self, video: str) -> list[str]:
        return list(self.videos[video]["frames"])

    def expression_annos(self, video: str, exp_id: str) -> list[str]:
        """The expression's anno_ids (keys of mask_dict.json), checked against the frame count.

        Raises:
            DatasetError: if an anno_id is missing or has the wrong frame count.
        """
        n_frames = len(self.videos[video]["frames"])
        anno_ids = [str(a) for a in self.videos[video]["expressions"][exp_id]["anno_id"]]
        for anno in anno_ids:
            if anno not in self.mask_dict:
                raise DatasetError(f"{video}/{exp_id}: anno_id {anno} missing from mask_dict.json")
            if len(self.mask_dict[anno]) != n_frames:
                raise DatasetError(
                    f"{video}/{exp_id}: anno_id {anno} has {len(self.mask_dict[anno])} masks for "
                    f"{n_frames} frames"
                )
        return anno_ids

    def frame_size(self, video: str, exp_id: str) -> tuple[int, int]:
        """(H, W) of the expression's frames: the size of its first non-null RLE.

        Raises:
            DatasetError: as `expression_annos`, or if every RLE is null (the size is unknown).
        """
        for anno in self.expression_annos(video, exp_id):
            size = next((r["size"] for r in self.mask_dict[anno] if r), None)
            if size is not None:
                return int(size[0]), int(size[1])
        raise DatasetError(f"{video}/{exp_id}: every RLE is null, the frame size is unknown")

    def gt_masks(self, video: str, exp_id: str) -> np.ndarray:
        """Union over the expression's anno_ids of the decoded RLEs; null RLE = absent in that frame.

        Returns:
            (T, H, W) bool.

        Raises:
            DatasetError: if an anno_id is missing, has the wrong frame count, or no frame size can
                be found.
        """
        from pycocotools import mask as mask_utils

        frames = self.frames(video)
        anno_ids = self.expression_annos(video, exp_id)
        out = np.zeros((len(frames), *self.frame_size(video, exp_id)), dtype=bool)
        for t in range(len(frames)):
            rles = [self.mask_dict[a][t] for a in anno_ids if self.mask_dict[a][t]]
            if rles:
                # Union in the RLE domain, then one decode per frame (decoding dominates the cost).
                rle = rles[0] if len(rles) == 1 else mask_utils.merge(rles, intersect=False)
                out[t] = mask_utils.decode(rle).view(bool)
        return out


def load_mevis_split(root: str | os.PathLike) -> MevisSplit:
    """Loads `meta_expressions.json` and `mask_dict.json` from a MeViS split folder.

    Raises:
        FileNotFoundError: if either file is missing.
        DatasetError: if the metadata has no "videos" key.
    """
    root = Path(root)
    meta_path, mask_path = root / "meta_expressions.json", root / "mask_dict.json"
    for path in (meta_path, mask_path):
        if not path.is_file():
            raise FileNotFoundError(f"MeViS split file not found: {path}")
    from videoglamm.safe_io import read_json

    meta = read_json(meta_path, DatasetError, what="MeViS meta_expressions")
    if "videos" not in meta:
        raise DatasetError(f"{meta_path} has no 'videos' key (expected MeViS meta_expressions format)")
    return MevisSplit(meta, read_json(mask_path, DatasetError, what="MeViS mask_dict"), root)
