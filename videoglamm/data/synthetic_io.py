"""Write synthetic videos to disk in the Ref-YouTube-VOS layout plus `[phrase](ids)` GCG captions.

    DIR/JPEGImages/<video>/<frame>.jpg
    DIR/Annotations/<video>/<frame>.png     palette PNG, pixel value = obj_id
    DIR/meta_expressions.json               {"videos": {video: {"frames": [...], "expressions": {...}}}}
    DIR/gcg/<video>.json                    {"caption": "A [red circle](1) moves left. ..."}

Read back with `RefVOSReader.from_root(DIR)` and `PhraseGCGReader.ytvos(DIR / "gcg", DIR)`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from videoglamm.data.synthetic import COLOURS, generate_video
from videoglamm.errors import InputError

# Palette index k -> colour of object k (0 = black background), like the DAVIS/YTVOS palettes.
_PALETTE = [0, 0, 0] + [c for colour in COLOURS.values() for c in colour]
_PALETTE += [128] * (768 - len(_PALETTE))


def _write_json(path: Path, data: object) -> None:
    # sort_keys and a fixed indent make the bytes a function of the content only.
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def write_dataset(out: Path, num_videos: int, seed: int, *, num_frames: int = 12,
                  size: tuple[int, int] = (96, 128), overwrite: bool = False, progress: bool = True) -> Path:
    """Generate `num_videos` videos and write them under `out`, atomically.

    Everything goes to a temporary folder next to `out` that is renamed into place at the end, so an
    interrupted run never leaves a half-written dataset. Output bytes depend only on the arguments.

    Args:
        out: destination folder (must not exist unless `overwrite`).
        num_videos, seed, num_frames, size: see `generate_video`.
        overwrite: replace an existing `out`.
        progress: show a tqdm bar.

    Returns:
        `out`.

    Raises:
        InputError: `out` exists and `overwrite` is False, or `num_videos` < 1.
    """
    from tqdm import tqdm

    out = Path(out)
    if num_videos < 1:
        raise InputError(f"--videos must be >= 1, got {num_videos}")
    if out.exists() and not overwrite:
        raise InputError(f"{out} already exists; choose another --out or pass --overwrite")
    from videoglamm.atomic import atomic_dir

    tmp, commit = atomic_dir(out)  # refuses an --out that is a file or lies under one
    try:
        meta: dict = {"videos": {}}
        (tmp / "gcg").mkdir()
        for index in tqdm(range(num_videos), desc="synth videos", disable=not progress):
            video = generate_video(seed, index, num_frames=num_frames, size=size)
            names = [f"{t:05d}" for t in range(num_frames)]
            frame_dir, mask_dir = tmp / "JPEGImages" / video.name, tmp / "Annotations" / video.name
            frame_dir.mkdir(parents=True)
            mask_dir.mkdir(parents=True)
            for name, frame, labels in zip(names, video.frames, video.labels):
                Image.fromarray(frame).save(frame_dir / f"{name}.jpg", quality=95)
                png = Image.fromarray(labels.astype(np.uint8), mode="P")
                png.putpalette(_PALETTE)
                png.save(mask_dir / f"{name}.png")
            meta["videos"][video.name] = {
                "frames": names,
                "expressions": {str(i): exp for i, exp in enumerate(video.expressions)},
            }
            _write_json(tmp / "gcg" / f"{video.name}.json", {"caption": video.caption})
        _write_json(tmp / "meta_expressions.json", meta)
        commit()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
