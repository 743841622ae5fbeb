"""Mask overlays: each object in its own colour, with its phrase in a legend, written as mp4 with PyAV."""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25], [145, 30, 180], [70, 240, 240],
     [245, 130, 48], [240, 50, 230], [210, 245, 60], [0, 128, 128]], dtype=np.float32,
)


def colour(k: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in PALETTE[k % len(PALETTE)])


def overlay(frame: np.ndarray | torch.Tensor, masks: np.ndarray | torch.Tensor, labels: Sequence[str] = (),
            alpha: float = 0.5) -> np.ndarray:
    """Blend K masks onto one frame and draw a legend.

    Args:
        frame: uint8 (H, W, 3).
        masks: bool (K, H, W).
        labels: legend text per object (missing ones are numbered).
        alpha: mask opacity.

    Returns:
        uint8 (H, W, 3).
    """
    image = np.asarray(frame, dtype=np.float32).copy()
    masks = np.asarray(masks, dtype=bool)
    for k, mask in enumerate(masks):
        image[mask] = (1 - alpha) * image[mask] + alpha * PALETTE[k % len(PALETTE)]
        edge = mask & ~_erode(mask)
        image[edge] = PALETTE[k % len(PALETTE)]
    out = Image.fromarray(image.clip(0, 255).astype(np.uint8))
    if len(masks):
        draw = ImageDraw.Draw(out)
        for k in range(len(masks)):
            text = labels[k] if k < len(labels) and labels[k] else f"object {k}"
            y = 2 + 12 * k
            draw.rectangle([2, y, 10, y + 8], fill=colour(k))
            draw.text((13, y - 2), text, fill=(255, 255, 255))
    return np.asarray(out)


def _erode(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return inner


class VideoWriter:
    """Writes uint8 (H, W, 3) frames to an H.264 mp4 one at a time (PyAV bundles FFmpeg)."""

    def __init__(self, path: str | os.PathLike, fps: float = 8.0) -> None:
        import av

        self._container = av.open(str(path), mode="w")
        self._fps = Fraction(fps).limit_denominator(1000)
        self._stream = None

    def write(self, frame: np.ndarray) -> None:
        import av

        h, w = frame.shape[:2]
        if self._stream is None:
            self._stream = self._container.add_stream("libx264", rate=self._fps)
            self._stream.width, self._stream.height = w + w % 2, h + h % 2
            self._stream.pix_fmt = "yuv420p"
        if w % 2 or h % 2:  # yuv420p needs even sides
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
            self._container.mux(packet)

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 8.0) -> None:
    """Write uint8 (T, H, W, 3) frames as an mp4."""
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(np.asarray(frame))
