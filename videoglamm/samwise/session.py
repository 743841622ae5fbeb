"""A SAMWISE video session, the same shape as VideoGLaMM's (`videoglamm.modeling.session`).

    session = model.init_video_session(video)                      # file, frame folder, array; None: live
    obj_ids = session.add_text_prompt(["the dog", "the red car"])   # one object per expression
    for out in model.propagate_in_video_iterator(session):
        out.frame_idx, out.object_ids, out.masks, out.scores

Expressions added together form a group: one `ClipTracker` (early fusion mixes each caption into the
frames, so SAMWISE's image features are per expression). A group reads the frames from its prompt frame
on in clips of `clip_length`, with frame indices counted from that frame (as a video starting there), so
a frame's masks are known once the clip holding it is complete: propagation yields frames in order as
every group has them, holding at most one clip of frames per group. A live source ends its last,
shorter clip with `end_stream()`.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
from torch import Tensor

from videoglamm.errors import InputError, ShapeMismatchError
from videoglamm.modeling.session import SessionFrameOutput, _as_frame, remove_from_groups
from videoglamm.samwise.processing import TextBatch
from videoglamm.samwise.streaming import HSA_SCOPES, ClipTracker, _open, hsa_scope

if TYPE_CHECKING:
    from videoglamm.samwise.model import SAMWISE


class _ClipGroup:
    """Expressions added together: their tracker, the frames of the clip being filled, results not yet
    yielded (by absolute frame index)."""

    def __init__(self, ids: list[int], tracker: ClipTracker, start: int) -> None:
        self.ids, self.tracker, self.start = ids, tracker, start
        self.clip: list[Tensor] = []
        self.ready: dict[int, tuple[Tensor, Tensor]] = {}

    def keep(self, rows: list[int]) -> None:
        self.ids = [self.ids[r] for r in rows]
        t = self.tracker.text
        self.tracker.text = TextBatch(t.input_ids[rows], t.padding[rows], t.offsets[rows], [t.captions[r] for r in rows])
        state = self.tracker.state
        state.memory.select_objects(rows)
        state.last_switch = state.last_switch[rows]
        self.ready = {i: (m[rows], s[rows]) for i, (m, s) in self.ready.items()}


class SAMWISESession:
    """Expressions, objects and clip-tracking state of one video (see the module docstring).

    Args:
        model: a `SAMWISE` in eval mode.
        video: a file path, a frame folder, PIL images or uint8 (T, H, W, 3); None for a live source.
        clip_length: frames per clip (default `config.inference.clip_length`).
        hsa: "global" replaces HSA's local subvolumes with attention over all clip positions.

    Raises:
        InputError: a bad clip length or HSA scope; VideoReadError: an unreadable video.
    """

    def __init__(self, model: "SAMWISE", video: Any = None, *, clip_length: int | None = None,
                 hsa: str | None = None) -> None:
        self.model = model
        self.clip_length = clip_length if clip_length is not None else model.config.inference.clip_length
        if self.clip_length < 1:
            raise InputError(f"clip_length must be >= 1, got {self.clip_length}")
        if hsa is not None and hsa not in HSA_SCOPES:
            raise InputError(f"hsa must be one of {HSA_SCOPES}, got {hsa!r}")
        self.hsa = hsa
        self.live = video is None
        self.threshold = model.config.inference.mask_threshold
        self.prompt_to_obj_ids: dict[str, list[int]] = {}
        self.captions: dict[int, str] = {}  # object id -> its expression as tokenized
        self.next_frame = 0  # the next frame propagation yields
        self._read = 0  # frames read from the source so far
        self._waiting: deque[Tensor] = deque()  # read, not yet yielded (at most one clip per group)
        self._groups: list[_ClipGroup] = []
        self._next_id = 0
        if self.live:
            self.num_frames: int | None = None
            self.size: tuple[int, int] | None = None
            self._pending: deque[Tensor] = deque()
            self.ended = False
        else:
            self.num_frames, self.size, self._frames = _open(video)
            self.ended = True

    # -- inputs ------------------------------------------------------------------------------------
    def add_frame(self, frame: Any) -> int:
        """Push the next frame of a live source (uint8 (H, W, 3)); returns its index."""
        if not self.live or self.ended:
            raise InputError("add_frame is for live sessions (video=None) whose stream has not ended")
        frame = _as_frame(frame)
        size = (int(frame.shape[0]), int(frame.shape[1]))
        if self.size is None:
            self.size = size
        elif size != self.size:
            raise ShapeMismatchError(f"pushed frame {self._read + len(self._pending)} is {size} but the stream is "
                                     f"{self.size}")
        self._pending.append(frame)
        return self._read + len(self._pending) - 1

    def end_stream(self) -> None:
        """A live source has no more frames: the next `propagate` finishes the last, shorter clips."""
        self.ended = True

    def add_text_prompt(self, texts: str | Sequence[str], frame_idx: int | None = None) -> list[int]:
        """Track each referring expression in `texts` from `frame_idx` (default: the next frame to read).

        Returns:
            One object id per expression.

        Raises:
            InputError: no / an empty / a too long expression, or a frame already read or outside the video.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        return self._add_group(texts, frame_idx)

    def remove_object(self, obj_id: int) -> None:
        """Stop tracking `obj_id` (from the next clip its group computes; frames already computed keep
        their masks but are yielded without it).

        Raises:
            InputError: no such object.
        """
        remove_from_groups(self._groups, obj_id)

    @property
    def object_ids(self) -> list[int]:
        return [i for g in self._groups for i in g.ids]

    @property
    def retained_frames(self) -> int:
        """Frames held: read but not yet yielded, and pushed but not yet read."""
        return len(self._waiting) + (len(self._pending) if self.live else 0)

    @property
    def memory_entries(self) -> int:
        return sum(len(g.tracker.state.memory) for g in self._groups)

    # -- propagation -------------------------------------------------------------------------------
    def propagate(self, max_frame_num_to_track: int | None = None,
                  show_progress_bar: bool = False) -> Iterator[SessionFrameOutput]:
        """Yield frames from `next_frame` on as their clips complete: to the end of the video; for a live
        source, as far as the pushed frames allow (all of them after `end_stream`)."""
        bar = None
        if show_progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(desc="propagate", unit="frame", total=None if self.live else self.num_frames - self.next_frame)
        count = 0
        try:
            while max_frame_num_to_track is None or count < max_frame_num_to_track:
                if self._waiting and all(self.next_frame in g.ready or self.next_frame < g.start for g in self._groups):
                    count += 1
                    if bar is not None:
                        bar.update(1)
                    yield self._emit()
                    continue
                frame = self._next_source_frame()
                if frame is not None:
                    self._feed(frame)
                elif self.ended and any(g.clip for g in self._groups):
                    for g in self._groups:  # the video ended inside these groups' clips
                        if g.clip:
                            self._run(g)
                else:
                    return
        finally:
            if bar is not None:
                bar.close()

    # -- internals ---------------------------------------------------------------------------------
    def _add_group(self, texts: Any, frame_idx: int | None) -> list[int]:
        start = self._read if frame_idx is None else int(frame_idx)
        if start < self._read:
            raise InputError(f"frame {start} was already read; prompt frame {self._read} or later")
        if self.num_frames is not None and start >= self.num_frames:
            raise InputError(f"prompt frame {start} is outside the video ({self.num_frames} frames)")
        tracker = ClipTracker(self.model, texts)
        ids = list(range(self._next_id, self._next_id + tracker.num_objects))
        self._next_id += len(ids)
        for obj_id, caption in zip(ids, tracker.text.captions):
            self.captions[obj_id] = caption
            self.prompt_to_obj_ids.setdefault(caption, []).append(obj_id)
        self._groups.append(_ClipGroup(ids, tracker, start))
        return ids

    def _next_source_frame(self) -> Tensor | None:
        if self.live:
            return self._pending.popleft() if self._pending else None
        return next(self._frames, None)

    def _feed(self, frame: Tensor) -> None:
        index = self._read
        self._read += 1
        self._waiting.append(frame)
        for g in self._groups:
            if index >= g.start:
                g.clip.append(frame)
                if len(g.clip) == self.clip_length:
                    self._run(g)

    def _run(self, group: _ClipGroup) -> None:
        first = group.start + group.tracker.next_frame
        with hsa_scope(self.model, self.hsa):
            logits, scores = group.tracker.step(torch.stack(group.clip))
        for t in range(len(group.clip)):
            group.ready[first + t] = (logits[t] > self.threshold, scores[t])
        group.clip = []

    def _emit(self) -> SessionFrameOutput:
        index, frame = self.next_frame, self._waiting.popleft()
        masks, scores = [], []
        for g in self._groups:
            if index < g.start:
                masks.append(torch.zeros(len(g.ids), *self.size, dtype=torch.bool))
                scores.append(torch.full((len(g.ids),), float("-inf")))
            else:
                m, s = g.ready.pop(index)
                masks.append(m)
                scores.append(s)
        self.next_frame += 1
        h, w = self.size
        return SessionFrameOutput(
            frame_idx=index, object_ids=self.object_ids,
            masks=torch.cat(masks) if masks else torch.zeros(0, h, w, dtype=torch.bool),
            scores=torch.cat(scores) if scores else torch.zeros(0), frame=frame,
        )
