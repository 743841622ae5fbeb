"""What the web demo shows: the answer as HTML with phrases in their mask colours, the per-object
presence strip, and the zip of PNG masks. Plain functions, no web framework."""

from __future__ import annotations

import html
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from videoglamm.processing.tokens import PHRASE_CLOSE, PHRASE_OPEN
from videoglamm.visualize import colour

_PHRASE = re.compile(re.escape(PHRASE_OPEN) + r"\s*(.*?)\s*" + re.escape(PHRASE_CLOSE), re.S)
# Presence strip geometry (pixels): a label column, then one cell per frame and one row per object.
LABEL_WIDTH, ROW_HEIGHT, AXIS_HEIGHT, STRIP_WIDTH = 150, 24, 18, 450
ABSENT, PENDING = (60, 60, 60), (200, 200, 200)


def _mark(k: int, phrase: str) -> str:
    r, g, b = colour(k)
    ink = "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#fff"  # readable on any palette colour
    return (f'<mark class="vg-phrase" data-object="{k}" style="background: rgb({r}, {g}, {b}); color: {ink}; '
            f'padding: 0 0.25em; border-radius: 0.2em">{html.escape(phrase)}</mark>')


def answer_html(text: str, phrases: Sequence[str]) -> str:
    """The answer as HTML: VideoGLaMM's `<p> phrase </p>` spans become `<mark>`s in the colour of the
    phrase's mask (object k = k-th phrase, as in `overlay`); SAMWISE's expressions (no tags) are listed
    one per line in their colours. The raw answer follows in a `<code class="vg-raw">`."""
    spans = list(_PHRASE.finditer(text))
    if spans:
        pieces, end = [], 0
        for k, match in enumerate(spans):
            pieces += [html.escape(text[end:match.start()]), _mark(k, match.group(1))]
            end = match.end()
        body = "".join(pieces) + html.escape(text[end:])
    else:
        body = "<br>".join(_mark(k, p) for k, p in enumerate(phrases)) if phrases else html.escape(text)
    return (f'<div class="vg-answer" style="font-size: 1.15em; line-height: 1.8">{body}</div>'
            f'<details><summary>raw answer</summary><code class="vg-raw">{html.escape(text)}</code></details>')


def cell_width(num_frames: int) -> int:
    """Width in pixels of one frame's cell in the presence strip (1 when frames share columns)."""
    return max(1, min(24, STRIP_WIDTH // max(1, num_frames)))


def strip_width(num_frames: int) -> int:
    """Pixels the frames take in the presence strip; past STRIP_WIDTH frames, each column covers several."""
    return min(num_frames * cell_width(num_frames), STRIP_WIDTH)


def presence_strip(presence: np.ndarray, labels: Sequence[str], done: int | None = None) -> np.ndarray:
    """Rows = objects, columns = frames: object k's colour where its mask is non-empty, dark grey where
    empty, light grey for frames not computed yet; a frame-number axis below. A long video's frames
    share columns: a column is coloured when the object is present in any of its frames.

    Args:
        presence: bool (K, T).
        labels: one name per row (missing ones are numbered).
        done: frames computed so far (default: all T).

    Returns:
        uint8 (max(K, 1) * ROW_HEIGHT + AXIS_HEIGHT, LABEL_WIDTH + strip_width(T) + 8, 3).
    """
    k, t = presence.shape
    done = t if done is None else done
    width = strip_width(t)
    rows = max(k, 1) * ROW_HEIGHT
    image = np.full((rows + AXIS_HEIGHT, LABEL_WIDTH + width + 8, 3), 255, dtype=np.uint8)
    x = np.arange(width)
    first, last = x * t // width, np.maximum(x * t // width, ((x + 1) * t - 1) // width)  # frames of column x
    present = np.logical_or.reduceat(presence, first, axis=1) if k else presence
    for row in range(k):
        cells = np.where(present[row][:, None], np.array(colour(row), np.uint8), np.array(ABSENT, np.uint8))
        cells[last >= done] = PENDING
        image[row * ROW_HEIGHT + 1:(row + 1) * ROW_HEIGHT - 1, LABEL_WIDTH:LABEL_WIDTH + width] = cells
    out = Image.fromarray(image)
    draw = ImageDraw.Draw(out)
    font, small = ImageFont.load_default(size=13), ImageFont.load_default(size=11)  # Pillow's bundled font
    for row in range(k):
        label = labels[row] if row < len(labels) and labels[row] else f"object {row}"
        y = row * ROW_HEIGHT + (ROW_HEIGHT - 10) // 2
        draw.rectangle([2, y, 11, y + 9], fill=colour(row))
        draw.text((16, y - 3), label[:18], fill=(0, 0, 0), font=font)
    draw.text((2, rows + 3), "frame", fill=(90, 90, 90), font=small)
    # Label every `step`-th frame, with at least 32 pixels per label.
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10**9) if -(-t // s) * 32 <= width)
    for frame in range(0, t, step):
        x0 = LABEL_WIDTH + frame * width // t
        draw.line([x0, rows, x0, rows + 2], fill=(90, 90, 90))
        draw.text((x0 + 1, rows + 3), str(frame), fill=(90, 90, 90), font=small)
    return np.asarray(out)


def zip_folder(folder: Path, out: Path) -> Path:
    """Zip every file under `folder` (paths relative to it) into `out`, atomically."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                archive.write(file, file.relative_to(folder).as_posix())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
