"""Synthetic referring videos: coloured shapes moving over textured backgrounds, with exact masks.

Every video has 1-3 objects with a distinct colour and a distinct shape, each in its own horizontal
band (so objects never occlude each other) and each moving in a distinct direction, which makes the
appearance ("the red circle") and motion ("the shape moving left") expressions unambiguous. With two
or more objects one enters late and possibly another leaves early, giving time expressions ("the
object that appears last") that are unambiguous too; absent frames have empty masks. Everything is a
pure function of (seed, video index). `write_dataset` (in `synthetic_io`) saves it in the
Ref-YouTube-VOS layout plus `[phrase](ids)` GCG captions, so the real readers load it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from videoglamm.errors import InputError

COLOURS = {
    "red": (220, 40, 40), "green": (40, 190, 70), "blue": (50, 90, 235),
    "yellow": (240, 215, 40), "purple": (160, 60, 210), "orange": (245, 140, 30),
}
SHAPES = ("circle", "square", "triangle", "diamond")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass
class SyntheticObject:
    """One moving shape. `first`/`last` are the inclusive frames it is visible in; `centres` (T, 2) xy."""

    obj_id: int
    colour: str
    shape: str
    direction: str
    first: int
    last: int
    radius: int
    centres: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass
class SyntheticVideo:
    """A generated video.

    Attributes:
        name: video id.
        frames: uint8 (T, H, W, 3).
        labels: uint8 (T, H, W); pixel value = `obj_id` of the visible object, 0 = background.
        objects: the shapes, `obj_id` 1..N.
        expressions: [{"exp", "obj_id" (str), "kind": "appearance"|"motion"|"time"}].
        caption: GCG caption mentioning every object as `[phrase](obj_id)`.
    """

    name: str
    frames: np.ndarray
    labels: np.ndarray
    objects: list[SyntheticObject]
    expressions: list[dict] = field(default_factory=list)
    caption: str = ""

    def frame_images(self) -> list[Image.Image]:
        return [Image.fromarray(frame) for frame in self.frames]

    def object_masks(self, obj_id: int) -> np.ndarray:
        """bool (T, H, W) mask of one object, empty where it is absent."""
        return self.labels == obj_id


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Muted stripes plus noise: texture for the encoders, far from the saturated shape colours."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(8, 24)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    low, high = rng.uniform(70, 110, size=3), rng.uniform(120, 160, size=3)
    image = low + wave[..., None] * (high - low) + rng.normal(0, 6, size=(height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _shape_mask(shape: str, cx: float, cy: float, r: int, height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    if shape == "triangle":  # apex up: half-width grows linearly from the apex to the base
        return (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _presence(rng: np.random.Generator, num_objects: int, num_frames: int) -> list[tuple[int, int]]:
    """(first, last) per object: all present, except one late entrant and maybe one early leaver."""
    spans = [(0, num_frames - 1)] * num_objects
    if num_objects >= 2 and num_frames >= 6:
        late, early = rng.permutation(num_objects)[:2]
        spans[late] = (int(rng.integers(num_frames // 3, num_frames // 2 + 1)), num_frames - 1)
        if rng.random() < 0.5:
            spans[early] = (0, int(rng.integers(num_frames // 2, 2 * num_frames // 3 + 1)))
    return spans


def _motion(rng, direction: str, band: tuple[int, int], r: int, width: int, span: tuple[int, int],
            num_frames: int) -> np.ndarray:
    """Centres (T, 2) moving linearly in `direction` over the visible span (NaN elsewhere)."""
    top, bottom = band
    centres = np.full((num_frames, 2), np.nan, dtype=np.float32)
    first, last = span
    steps = np.linspace(0.0, 1.0, last - first + 1)
    dx, dy = DIRECTIONS[direction]
    if dx:
        lo, hi = r + 2, width - r - 3
        start, end = (lo, hi) if dx > 0 else (hi, lo)
        centres[first:last + 1, 0] = start + steps * (end - start)
        centres[first:last + 1, 1] = (top + bottom) / 2
    else:
        lo, hi = top + r + 1, bottom - r - 2
        start, end = (lo, hi) if dy > 0 else (hi, lo)
        centres[first:last + 1, 0] = rng.uniform(r + 2, width - r - 3)
        centres[first:last + 1, 1] = start + steps * (end - start)
    return centres


def _expressions(rng: np.random.Generator, objects: list[SyntheticObject], num_frames: int) -> list[dict]:
    exps = []
    for obj in objects:
        oid = str(obj.obj_id)
        exps.append({"exp": f"the {obj.name}", "obj_id": oid, "kind": "appearance"})
        noun = ("shape", "object")[int(rng.integers(2))]
        exps.append({"exp": f"the {noun} moving {obj.direction}", "obj_id": oid, "kind": "motion"})
    if len(objects) >= 2:
        firsts, lasts = [o.first for o in objects], [o.last for o in objects]
        if firsts.count(max(firsts)) == 1 and max(firsts) > 0:
            late = objects[firsts.index(max(firsts))]
            exps.append({"exp": "the object that appears last", "obj_id": str(late.obj_id), "kind": "time"})
        if lasts.count(min(lasts)) == 1 and min(lasts) < num_frames - 1:
            early = objects[lasts.index(min(lasts))]
            exps.append({"exp": "the object that disappears first", "obj_id": str(early.obj_id),
                         "kind": "time"})
    return exps


def _caption(objects: list[SyntheticObject], num_frames: int) -> str:
    sentences = []
    for obj in objects:
        article = "an" if obj.name[0] in "aeiou" else "a"
        when = f"Later, {article}" if obj.first > 0 else article.capitalize()
        leaves = " before leaving the scene" if obj.last < num_frames - 1 else ""
        sentences.append(f"{when} [{obj.name}]({obj.obj_id}) moves {obj.direction}{leaves}.")
    return " ".join(sentences)


def generate_video(seed: int, index: int, *, num_frames: int = 12,
                   size: tuple[int, int] = (96, 128)) -> SyntheticVideo:
    """Generate video `index` of the synthetic set `seed`.

    Args:
        seed, index: the video is a pure function of both.
        num_frames: T (>= 1).
        size: (H, W); at least 32x32 so that three bands of shapes fit.

    Returns:
        The `SyntheticVideo`.
    """
    height, width = size
    if num_frames < 1 or height < 32 or width < 32:
        raise InputError(f"need num_frames >= 1 and size >= 32x32, "
                         f"got {num_frames} frames of {height}x{width}")
    rng = np.random.default_rng([seed, index])
    num_objects = int(rng.integers(1, 4))
    colours = rng.choice(list(COLOURS), num_objects, replace=False)
    shapes = rng.choice(SHAPES, num_objects, replace=False)
    directions = rng.choice(list(DIRECTIONS), num_objects, replace=False)
    bands = rng.permutation(num_objects)
    band_h = height // num_objects
    radius = max(3, min(band_h // 5, min(height, width) // 8))
    spans = _presence(rng, num_objects, num_frames)
    objects = []
    for k in range(num_objects):
        band = (int(bands[k]) * band_h, (int(bands[k]) + 1) * band_h)
        centres = _motion(rng, str(directions[k]), band, radius, width, spans[k], num_frames)
        objects.append(SyntheticObject(k + 1, str(colours[k]), str(shapes[k]), str(directions[k]),
                                       spans[k][0], spans[k][1], radius, centres))
    background = _background(rng, height, width)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    labels = np.zeros((num_frames, height, width), dtype=np.uint8)
    for t in range(num_frames):
        frame = background.copy()
        for obj in objects:
            if obj.first <= t <= obj.last:
                mask = _shape_mask(obj.shape, *obj.centres[t], obj.radius, height, width)
                frame[mask] = COLOURS[obj.colour]
                labels[t][mask] = obj.obj_id
        frames[t] = frame
    return SyntheticVideo(f"synth_{index:04d}", frames, labels, objects,
                          _expressions(rng, objects, num_frames), _caption(objects, num_frames))


def generate_videos(num_videos: int, seed: int, *, num_frames: int = 12,
                    size: tuple[int, int] = (96, 128)) -> list[SyntheticVideo]:
    """Generate videos 0..num_videos-1 of set `seed` in memory (see `generate_video`)."""
    return [generate_video(seed, i, num_frames=num_frames, size=size) for i in range(num_videos)]
