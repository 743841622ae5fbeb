"""A video session for VideoGLaMM in the style of transformers' `Sam2VideoModel` / `Sam3VideoModel`.

    session = model.init_video_session(video)            # a file, frame folder, array; None for a live source
    obj_ids = session.add_text_prompt("Who is running?")  # the answer's [SEG]s become objects
    for out in model.propagate_in_video_iterator(session):
        out.frame_idx, out.object_ids, out.masks, out.scores  # masks (N, H, W) bool at the video's size

Objects are tracked in groups (those added together), each a `SAM2VideoTracker` with its own bounded
memory; a frame is read, transformed and encoded by SAM2's image encoder once and its features go to
every group. Frames are not kept: a complete video is read in order as propagation advances, a live
source's pushed frames are dropped once propagated (apart from the bounded encoder pool, `LiveFramePool`).
`predict` and `predict_stream` are this session with one prompt.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from videoglamm.errors import InputError, ShapeMismatchError
from videoglamm.modeling.predict import _PHRASE, PredictOptions, _Source, answer_with, encode_frames_for_answers
from videoglamm.modeling.sam2_tracking import SAM2VideoTracker, refresh_meta_rope_caches

if TYPE_CHECKING:
    from videoglamm.modeling.videoglamm import VideoGLaMM
    from videoglamm.processing.processor import VideoGLaMMProcessor
    from videoglamm.processing.video_io import VideoLike


@dataclass
class SessionFrameOutput:
    """One propagated frame.

    Attributes:
        frame_idx: the frame's index in the video (or in the pushed stream).
        object_ids: the N objects of the session at this frame, in the order they were added.
        masks: (N, H, W) bool at the video's resolution; empty before an object's first frame.
        scores: (N,) SAM2 object-score logits (<= 0: absent); -inf before an object's first frame.
        frame: the source frame, uint8 (H, W, 3) (for overlays).
    """

    frame_idx: int
    object_ids: list[int]
    masks: Tensor
    scores: Tensor
    frame: Tensor = field(repr=False)


@dataclass
class SessionPrompt:
    """A prompt of the session: the question, its answer and the objects its `[SEG]`s became.

    Attributes:
        prompt: the question ("" for objects added by embedding).
        text: the generated answer (`[SEG]` and `<p>` tags kept).
        phrases: the `<p> ... </p>` spans of the answer, in order.
        object_ids: one id per `[SEG]`, in order.
        frame_idx: the frame the objects were prompted at.
        encoder_frames: the source frames the encoders saw.
        seg_embeddings: (K, D) the projected `[SEG]` embeddings (SAM2 prompt tokens).
    """

    prompt: str
    text: str
    phrases: list[str]
    object_ids: list[int]
    frame_idx: int
    encoder_frames: list[int]
    seg_embeddings: Tensor = field(repr=False)

    def phrase_of(self, obj_id: int) -> str | None:
        """The phrase of object `obj_id` when the answer has one phrase per `[SEG]`, else None."""
        if len(self.phrases) != len(self.object_ids):
            return None
        return self.phrases[self.object_ids.index(obj_id)]


class LiveFramePool:
    """The frames of a live stream the encoders may see later: at most `capacity`, spread evenly.

    Frames whose index is a multiple of the stride are kept; when more than `capacity` are kept, the
    stride doubles and every other kept frame is dropped. So the pool always spans the whole stream
    seen so far (the encoders then sample from it as from a video file's 1 fps pool) in bounded memory;
    it holds every frame while the stream is shorter than `capacity`.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise InputError(f"the live frame pool needs a capacity >= 1, got {capacity}")
        self.capacity = capacity
        self.stride = 1
        self._frames: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, index: int, frame: Tensor) -> None:
        if index % self.stride:
            return
        self._frames[index] = frame
        while len(self._frames) > self.capacity:
            self.stride *= 2
            self._frames = {i: f for i, f in self._frames.items() if i % self.stride == 0}

    @property
    def indices(self) -> list[int]:
        """The kept frame indices, in order."""
        return sorted(self._frames)

    def get(self, indices: Sequence[int]) -> Tensor:
        missing = [i for i in indices if i not in self._frames]
        if missing:
            raise InputError(f"frames {missing[:8]} of the live stream are no longer kept (kept: every "
                             f"{self.stride}-th frame); choose encoder frames from {self.indices[:8]}...")
        return torch.stack([self._frames[i] for i in indices])


class _Group:
    """Objects added together: their prompt tokens and, in track mode, their own SAM2 tracker."""

    def __init__(self, ids: list[int], tokens: Tensor, start: int, tracker: SAM2VideoTracker | None) -> None:
        self.ids, self.tokens, self.start, self.tracker = ids, tokens, start, tracker
        self.prompt_frames = set(tracker.prompt_frames) if tracker is not None else set()

    def keep(self, rows: list[int]) -> None:
        self.ids = [self.ids[r] for r in rows]
        self.tokens = self.tokens[rows]
        if self.tracker is not None and self.tracker.num_objects is not None:
            self.tracker.keep_objects(rows)


def remove_from_groups(groups: list[Any], obj_id: int) -> None:
    """Drop `obj_id` from the object group (`.ids`, `.keep(rows)`) that holds it; an emptied group goes.

    Raises:
        InputError: no group holds `obj_id`.
    """
    for group in groups:
        if obj_id in group.ids:
            rows = [r for r, i in enumerate(group.ids) if i != obj_id]
            if rows:
                group.keep(rows)
            else:
                groups.remove(group)
            return
    raise InputError(f"no object {obj_id} in this session; its objects are {[i for g in groups for i in g.ids]}")


def _as_frame(frame: Any) -> Tensor:
    if hasattr(frame, "convert"):  # PIL
        frame = np.asarray(frame.convert("RGB"))
    if isinstance(frame, np.ndarray):
        frame = torch.from_numpy(np.ascontiguousarray(frame))
    if not isinstance(frame, Tensor) or frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != torch.uint8:
        shape = tuple(frame.shape) if hasattr(frame, "shape") else type(frame).__name__
        raise InputError(f"a pushed frame must be uint8 (H, W, 3) (array, tensor or PIL image); got {shape}")
    return frame


class VideoSession:
    """Prompts, objects and tracking state of one video (see the module docstring).

    Args:
        model: a `VideoGLaMM` in eval mode.
        processor: its processor.
        video: a file path, a frame folder, PIL images or a uint8 (T, H, W, 3) array; None for a live
            source whose frames are pushed with `add_frame`.
        options: `PredictOptions` (generation, encoder frames, `mask_mode`, `prompt_frames`). A live
            source keeps at most `max_video_frames` frames (64 when None) for the encoders.

    Raises:
        InputError / VideoReadError: an unusable video.
    """

    def __init__(self, model: "VideoGLaMM", processor: "VideoGLaMMProcessor", video: "VideoLike | _Source | None",
                 options: PredictOptions | None = None) -> None:
        self.model, self.processor = model, processor
        self.options = options or PredictOptions.for_model(model.config)
        self.live = video is None
        self.prompts: list[SessionPrompt] = []
        self.next_frame = 0  # the next frame propagation computes
        self._groups: list[_Group] = []
        self._next_id = 0
        self._generator = torch.Generator().manual_seed(self.options.seed) if self.options.seed is not None else None
        self._visual: tuple[tuple[int, ...], Tensor] | None = None  # the last encoder input and its tokens
        if self.live:
            self._source = None
            self.num_frames: int | None = None
            self.size: tuple[int, int] | None = None
            self._pending: deque[Tensor] = deque()
            self.pool = LiveFramePool(self.options.max_video_frames or 64)
            self.num_pushed = 0
        else:
            self._source = video if isinstance(video, _Source) else _Source(video, self.options)
            self.num_frames = self._source.num_frames
            self.size = self._source.size
            self._frames = iter(self._source)

    # -- inputs ------------------------------------------------------------------------------------
    def add_frame(self, frame: Any) -> int:
        """Push the next frame of a live source (uint8 (H, W, 3)); returns its index.

        It is computed by the next `propagate` (or `step`); prompts may target it until then.

        Raises:
            InputError: not a live session, or not a uint8 (H, W, 3) frame.
            ShapeMismatchError: the frame's size differs from the first frame's.
        """
        if not self.live:
            raise InputError("add_frame is for live sessions (init_video_session(video=None)); this one has a video")
        frame = _as_frame(frame)
        size = (int(frame.shape[0]), int(frame.shape[1]))
        if self.size is None:
            self.size = size
        elif size != self.size:
            raise ShapeMismatchError(f"pushed frame {self.num_pushed} is {size} but the stream is {self.size}")
        self._pending.append(frame)
        self.pool.add(self.num_pushed, frame)
        self.num_pushed += 1
        return self.num_pushed - 1

    def add_text_prompt(self, prompt: str | Sequence[str], frame_idx: int | None = None) -> list[int]:
        """Answer `prompt` (greedy unless the options sample) and make each `[SEG]` an object.

        The encoders see the video's encoder frames (`PredictOptions`); for a live source, frames
        chosen from those pushed so far. The objects are prompted at `frame_idx`: by default frame 0
        of a video that has not been propagated yet, else the next frame to propagate (for a live source:
        the oldest pushed frame not yet propagated, normally the one just pushed).

        Args:
            prompt: a question, or several (each answered separately, its objects a group of their own).
            frame_idx: the first frame of the new objects; frames before it give them empty masks.

        Returns:
            The new object ids, in `[SEG]` order (all prompts' ids concatenated); the answers are in
            `session.prompts`.

        Raises:
            InputError: an empty prompt, a frame already propagated or outside the video, no frame yet.
        """
        from videoglamm.modeling.predict import check_prompts

        prompts = check_prompts(prompt)
        start = self._prompt_frame(frame_idx)
        indices, visual = self._encoder_tokens()
        ids: list[int] = []
        for question, (text, _, seg, _) in zip(prompts, answer_with(
                self.model, self.processor, visual, indices, prompts, self.options, self._generator)):
            ids += self._add(question, text, seg, start, indices)
        return ids

    def add_prompt_embeddings(self, embeddings: Tensor, frame_idx: int | None = None, *, text: str = "",
                              prompt: str = "") -> list[int]:
        """Add K objects prompted by SAM2 prompt tokens directly (e.g. `[SEG]` embeddings kept from another
        session), as one group. See `add_text_prompt` for `frame_idx`.

        Args:
            embeddings: (K, D) tokens, D = SAM2's width.

        Raises:
            ShapeMismatchError: not (K, D).
        """
        d = self.model.mask_decoder.hidden_dim
        if embeddings.ndim != 2 or embeddings.shape[1] != d:
            raise ShapeMismatchError(f"prompt embeddings must be (K, D={d}); got {tuple(embeddings.shape)}")
        start = self._prompt_frame(frame_idx)
        embeddings = embeddings.to(self.model.device, self.model.dtype)  # where `[SEG]` embeddings are made
        return self._add(prompt, text, embeddings, start, [start])

    def remove_object(self, obj_id: int) -> None:
        """Stop tracking `obj_id` from the next propagated frame on (its memory is freed).

        Raises:
            InputError: no such object in the session.
        """
        remove_from_groups(self._groups, obj_id)

    # -- state -------------------------------------------------------------------------------------
    @property
    def object_ids(self) -> list[int]:
        """The objects tracked now, in the order they were added."""
        return [i for g in self._groups for i in g.ids]

    @property
    def prompt_to_obj_ids(self) -> dict[str, list[int]]:
        """Each prompt's object ids (SAM3-video style; a repeated prompt lists all its objects)."""
        out: dict[str, list[int]] = {}
        for p in self.prompts:
            out.setdefault(p.prompt, []).extend(p.object_ids)
        return out

    def prompt_of(self, obj_id: int) -> SessionPrompt:
        """The prompt (question, answer, phrases) object `obj_id` came from."""
        for p in self.prompts:
            if obj_id in p.object_ids:
                return p
        raise InputError(f"no object {obj_id} in this session")

    @property
    def memory_entries(self) -> int:
        """Frame entries held in all SAM2 memory banks (bounded: it stops growing with the video)."""
        return sum(len(g.tracker.memory) for g in self._groups if g.tracker is not None)

    @property
    def retained_frames(self) -> int:
        """Source frames the session holds (live: pushed but not propagated, plus the encoder pool)."""
        return len(self._pending) + len(self.pool) if self.live else 0

    # -- propagation -------------------------------------------------------------------------------
    def propagate(self, max_frame_num_to_track: int | None = None,
                  show_progress_bar: bool = False) -> Iterator[SessionFrameOutput]:
        """Compute frames from `next_frame` on: to the end of the video, or (live) of the pushed frames.

        The iteration may be left and resumed; objects added or removed in between take effect from the
        next frame it computes.

        Args:
            max_frame_num_to_track: stop after this many frames (None: no limit).
            show_progress_bar: a tqdm bar over the frames.
        """
        if max_frame_num_to_track is not None and max_frame_num_to_track < 0:
            raise InputError(f"max_frame_num_to_track must be >= 0 or None, got {max_frame_num_to_track}")
        bar = None
        if show_progress_bar:
            from tqdm.auto import tqdm

            total = len(self._pending) if self.live else self.num_frames - self.next_frame
            if max_frame_num_to_track is not None:
                total = min(total, max_frame_num_to_track)
            bar = tqdm(total=total, desc="propagate", unit="frame")
        count = 0
        try:
            while max_frame_num_to_track is None or count < max_frame_num_to_track:
                frame = self._next_source_frame()
                if frame is None:
                    return
                out = self._compute(frame)
                count += 1
                if bar is not None:
                    bar.update(1)
                yield out
        finally:
            if bar is not None:
                bar.close()

    def step(self, frame: Any) -> SessionFrameOutput:
        """Live sources: push `frame` and compute it (`add_frame` then one propagated frame)."""
        self.add_frame(frame)
        return next(self.propagate())

    # -- internals ---------------------------------------------------------------------------------
    def _prompt_frame(self, frame_idx: int | None) -> int:
        start = self.next_frame if frame_idx is None else int(frame_idx)
        if start < self.next_frame:
            raise InputError(f"frame {start} was already propagated; prompt frame {self.next_frame} or later")
        if not self.live and start >= self.num_frames:
            raise InputError(f"prompt frame {start} is outside the video ({self.num_frames} frames)")
        return start

    def _encoder_tokens(self) -> tuple[list[int], Tensor]:
        opts = self.options
        if self.live:
            if not len(self.pool):
                raise InputError("no frame pushed yet: add_frame(...) before asking about the stream")
            pool = self.pool.indices
            if opts.frame_indices is not None:
                indices = list(opts.frame_indices)
            else:
                local = self.processor.encoder_frame_indices(len(pool), opts.frame_sampling, None, opts.num_frames)
                indices = [pool[i] for i in local]
            get = self.pool.get
        else:
            indices = self._source.encoder_indices(self.processor, opts)
            get = self._source.get
        key = tuple(indices)
        if self._visual is None or self._visual[0] != key:
            self._visual = (key, encode_frames_for_answers(self.model, self.processor, get(indices)))
        return indices, self._visual[1]

    def _add(self, prompt: str, text: str, seg: Tensor, start: int, encoder_frames: list[int]) -> list[int]:
        ids = list(range(self._next_id, self._next_id + seg.shape[0]))
        self._next_id += len(ids)
        self.prompts.append(SessionPrompt(prompt, text, _PHRASE.findall(text), ids, start, list(encoder_frames), seg))
        if ids:
            self._groups.append(self._group(ids, seg, start, encoder_frames))
        return ids

    def _group(self, ids: list[int], seg: Tensor, start: int, encoder_frames: list[int]) -> _Group:
        opts = self.options
        if opts.mask_mode == "framewise":  # every frame from `start` decoded on its own
            return _Group(ids, seg, start, None)
        frames = [start]
        if opts.prompt_frames == "encoder":  # the encoder frames from `start` on are prompt frames too
            frames = sorted({i for i in encoder_frames if i >= start}) or [start]
        return self._tracked_group(ids, seg, frames)

    def _tracked_group(self, ids: list[int], seg: Tensor, prompt_frames: list[int]) -> _Group:
        # num_frames=None: the stream's length is not assumed (as `predict` has always tracked).
        tracker = SAM2VideoTracker(self.model.mask_decoder, prompt_frames=prompt_frames)
        refresh_meta_rope_caches(self.model.mask_decoder.model)
        return _Group(ids, seg, tracker.prompt_frames[0], tracker)

    def _next_source_frame(self) -> Tensor | None:
        if self.live:
            return self._pending.popleft() if self._pending else None
        return next(self._frames, None)

    def _compute(self, frame: Tensor) -> SessionFrameOutput:
        index, size = self.next_frame, self.size
        decoder = self.model.mask_decoder
        masks, scores = [], []
        with torch.no_grad():
            features = None
            if any(index >= g.start for g in self._groups):  # SAM2's image encoder once for every group
                param = decoder.model.no_mem_embed
                view = self.processor.sam_transform(frame[None])[0].to(param.device, param.dtype)
                features = decoder.encode_frames(view[None])
            for g in self._groups:
                k = len(g.ids)
                if index < g.start:
                    masks.append(torch.zeros(k, *size, dtype=torch.bool))
                    scores.append(torch.full((k,), float("-inf")))
                elif g.tracker is None:
                    out = decoder.decode(features, g.tokens[None])
                    masks.append((decoder.upsample(out.mask_logits, size)[0] > 0).cpu())
                    scores.append(out.object_score_logits.reshape(k).float().cpu())
                else:
                    is_prompt = index in g.prompt_frames
                    step = g.tracker.step_features(index, features, g.tokens if is_prompt else None, is_prompt)
                    masks.append((decoder.upsample(step.mask_logits[:, 0][None], size)[0] > 0).cpu())
                    scores.append(step.object_score_logits.reshape(k).float().cpu())
        self.next_frame += 1
        h, w = size
        return SessionFrameOutput(
            frame_idx=index, object_ids=self.object_ids,
            masks=torch.cat(masks) if masks else torch.zeros(0, h, w, dtype=torch.bool),
            scores=torch.cat(scores) if scores else torch.zeros(0), frame=frame,
        )
