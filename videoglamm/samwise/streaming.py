"""Streaming SAMWISE inference: non-overlapping clips of T frames, memory carried across clips.

Frames are read in order and grouped into clips as they arrive (HSA and TVA need the whole clip, so the
latency is one clip). Each clip goes through early fusion once per prompt (the adapters mix each caption
into the frames) and its frames are decoded in order with SAM2 memory keyed by absolute frame index.
The memory bank is trimmed to what SAM2 reads, so memory use does not grow with video length. The last
clip may be shorter; a video shorter than one clip is a single short clip.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from videoglamm.errors import InputError
from videoglamm.modeling.outputs import GroundingResult
from videoglamm.processing.frame_folder import FrameFolder
from videoglamm.processing.video_io import VideoFile, VideoLike, as_frames
from videoglamm.samwise.processing import pad_transform, postprocess_logits, tokenize_captions

if TYPE_CHECKING:
    from videoglamm.samwise.model import SAMWISE

HSA_SCOPES = ("local", "global")


class ClipTracker:
    """Segment K prompts in one video, one clip at a time (`step`), keeping SAM2 memory between clips.

    Args:
        model: a `SAMWISE` in eval mode.
        prompts: K referring expressions.

    Raises:
        InputError: no prompt, an empty one, or one longer than the text encoder takes.
    """

    def __init__(self, model: "SAMWISE", prompts: Sequence[str]) -> None:
        if isinstance(prompts, str):
            raise InputError("prompts must be a list of strings, not a single string")
        self.model = model
        # As given (official inference), unless `inference.normalise_prompts`.
        self.text = tokenize_captions(model.tokenizer, model.config, list(prompts), training=False).to(model.device)
        self.state = model.new_state(len(prompts))
        self.next_frame = 0

    @property
    def num_objects(self) -> int:
        return self.text.input_ids.shape[0]

    def step(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Process the next clip.

        Args:
            frames: uint8 (T', H, W, 3), the next T' >= 1 frames of the video.

        Returns:
            (mask logits (T', K, H, W) at the frame size, object-score logits (T', K)).

        Raises:
            InputError: frames are not uint8 (T', H, W, 3) with T' >= 1.
        """
        if frames.ndim != 4 or frames.shape[0] == 0:
            raise InputError(f"a clip must be uint8 (T, H, W, 3) with T >= 1; got {tuple(frames.shape)}")
        model, k, t = self.model, self.num_objects, frames.shape[0]
        pixels, valid = pad_transform(frames, model.sam2.image_size, model.config.mean, model.config.std,
                                      short_side=model.config.inference.resize_short_side)
        pixels = pixels.to(model.device, model.dtype)
        batch = pixels.unsqueeze(0).expand(k, -1, -1, -1, -1).flatten(0, 1)  # (K*T', 3, S, S), batch-major
        with torch.no_grad():
            feats, tokens = model.encode_clip(batch, self.text, t)
            low_res, scores = model.decode_clip(feats, tokens, t, self.next_frame, self.state)
            logits = postprocess_logits(low_res, model.sam2.image_size, valid, tuple(frames.shape[1:3]))
        self.next_frame += t
        return logits.transpose(0, 1).cpu(), scores.transpose(0, 1).float().cpu()


@contextlib.contextmanager
def hsa_scope(model: "SAMWISE", scope: str | None) -> Iterator[None]:
    """Temporarily run every adapter's HSA with `scope` ("local" / "global"; None keeps the config's)."""
    if scope is None:
        yield
        return
    if scope not in HSA_SCOPES:
        raise InputError(f"hsa_scope must be one of {HSA_SCOPES}, got {scope!r}")
    modules = [a.hsa for a in model.adapters if a.hsa is not None]
    before = [m.scope for m in modules]
    for m in modules:
        m.scope = scope
    try:
        yield
    finally:
        for m, old in zip(modules, before):
            m.scope = old


def _open(video: VideoLike) -> tuple[int, tuple[int, int], Iterator[Tensor]]:
    """(number of frames, (H, W), an in-order frame iterator) without decoding a file up front."""
    if isinstance(video, (str, bytes)) or hasattr(video, "__fspath__"):
        reader = FrameFolder(video) if os.path.isdir(video) else VideoFile(video)
        first = reader.get([0])[0]
        return len(reader), (int(first.shape[0]), int(first.shape[1])), reader.iter_frames()
    frames = as_frames(video)
    return frames.shape[0], (int(frames.shape[1]), int(frames.shape[2])), iter(frames)


def _clips(frames: Iterator[Tensor], length: int) -> Iterator[Tensor]:
    clip: list[Tensor] = []
    for frame in frames:
        clip.append(frame)
        if len(clip) == length:
            yield torch.stack(clip)
            clip = []
    if clip:
        yield torch.stack(clip)


@dataclass
class SAMWISEStream:
    """`predict_stream`'s result; iterating yields `(frame_index, masks (K, H, W) bool, scores (K,))`.

    It has the interface `videoglamm.writers.write_prediction` consumes (as VideoGLaMM's stream).
    """

    text: str
    phrases: list[str]
    num_frames: int
    size: tuple[int, int]
    frame_indices: list[int]
    _frames: Iterator[tuple[int, Tensor, Tensor, Tensor]] = field(repr=False, default=iter(()))

    @property
    def num_objects(self) -> int:
        return len(self.phrases)

    def __iter__(self) -> Iterator[tuple[int, Tensor, Tensor]]:
        return ((index, masks, scores) for index, _, masks, scores in self._frames)

    def with_frames(self) -> Iterator[tuple[int, Tensor, Tensor, Tensor]]:
        """Like iterating, with the source frame: `(frame_index, frame uint8 (H, W, 3), masks, scores)`."""
        return self._frames


def predict_stream(model: "SAMWISE", video: VideoLike, prompts: Sequence[str], *, clip_length: int | None = None,
                   hsa: str | None = None) -> SAMWISEStream:
    """Segment every prompt in `video`, computing masks clip by clip as the result is iterated: a
    `videoglamm.samwise.session.SAMWISESession` with these prompts from frame 0.

    Args:
        model: `SAMWISE` (put it in eval mode first).
        video: a file path, a folder of .jpg/.png frames, PIL images or a uint8 (T, H, W, 3) array.
        prompts: K >= 1 referring expressions, tracked jointly (each independently of the others).
        clip_length: frames per clip (default `config.inference.clip_length`).
        hsa: "global" replaces HSA's local subvolumes with attention over all clip positions.

    Returns:
        `SAMWISEStream`.

    Raises:
        InputError: no prompt / an empty one, a bad clip length or HSA scope; VideoReadError: unreadable video.
    """
    from videoglamm.samwise.session import SAMWISESession

    session = SAMWISESession(model, video, clip_length=clip_length, hsa=hsa)
    ids = session._add_group(prompts, 0)
    captions = [session.captions[i] for i in ids]
    frames = ((o.frame_idx, o.frame, o.masks, o.scores) for o in session.propagate())
    return SAMWISEStream(text="\n".join(captions), phrases=captions, num_frames=session.num_frames,
                         size=session.size, frame_indices=list(range(session.num_frames)), _frames=frames)


def predict(model: "SAMWISE", video: VideoLike, prompts: Sequence[str], **options: Any) -> list[GroundingResult]:
    """Segment every prompt in `video`: one `GroundingResult` per prompt with a (T, H, W) bool track.

    Args:
        model, video, prompts, options: as `predict_stream`.

    Returns:
        Per prompt: text = phrases[0] = the prompt as tokenized, masks = [(T, H, W) bool], scores (1, T).
    """
    stream = predict_stream(model, video, prompts, **options)
    k, (h, w) = stream.num_objects, stream.size
    masks = torch.zeros(k, stream.num_frames, h, w, dtype=torch.bool)
    scores = torch.zeros(k, stream.num_frames)
    for index, frame_masks, frame_scores in stream:
        masks[:, index] = frame_masks
        scores[:, index] = frame_scores
    return [GroundingResult(text=p, phrases=[p], masks=[masks[i]], scores=scores[i : i + 1],
                            frame_indices=stream.frame_indices) for i, p in enumerate(stream.phrases)]
