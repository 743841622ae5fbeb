"""Inference: one video + prompt -> answer text and one mask track per `[SEG]`.

`predict` / `predict_stream` are a `videoglamm.modeling.session.VideoSession` with one prompt: the
encoder frames are read by index, then every frame in order for SAM2, one at a time, so memory does not
grow with the video length (SAM2 keeps only the memory it attends to).
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch

from videoglamm.config import InferenceConfig
from videoglamm.errors import ConfigError, InputError
from videoglamm.modeling.generation import generate
from videoglamm.modeling.outputs import GroundingResult
from videoglamm.processing.frame_folder import FrameFolder
from videoglamm.processing.frames import decoded_frame_pool
from videoglamm.processing.tokens import ASSISTANT_TAG, END_TAG, PHRASE_CLOSE, PHRASE_OPEN
from videoglamm.processing.video_io import VideoFile, VideoLike, as_frames

if TYPE_CHECKING:
    from videoglamm.config import VideoGLaMMConfig
    from videoglamm.modeling.session import SessionPrompt, VideoSession
    from videoglamm.modeling.videoglamm import VideoGLaMM
    from videoglamm.processing.processor import VideoGLaMMProcessor

_PHRASE = re.compile(re.escape(PHRASE_OPEN) + r"\s*(.*?)\s*" + re.escape(PHRASE_CLOSE), re.S)
@dataclass
class PredictOptions:
    """Options of `predict` (all keyword arguments there). `PredictOptions.for_model(config, **kw)` starts
    from the model's own defaults (`config.inference`); a bare `PredictOptions()` has the official ones.

    Attributes:
        num_frames: encoder frames (None: the config's); a multiple of the segment length.
        frame_sampling: "uniform" (official), "spread" or "first"; `frame_indices` overrides it.
        frame_indices: explicit source frames for the encoders.
        video_fps, max_video_frames: how a video file is decoded for the encoders (official: 1 fps, at most
            64 frames); None for every frame / no cap. Frame arrays and folders are used whole.
        max_new_tokens: generation budget.
        do_sample, temperature, top_p, seed: sampling; greedy unless `do_sample`.
        mask_mode: "track" (SAM2 memory propagation, as the official inference) or "framewise"
            (each frame decoded on its own, as in training).
        prompt_frames: "first" (frame 0 carries the prompts) or "encoder" (every encoder frame does).
        use_cache: KV-cached generation (False only to compare against).

    Raises:
        InputError: an unknown mode or a value out of range.
    """

    num_frames: int | None = None
    frame_sampling: str = "uniform"
    frame_indices: Sequence[int] | None = None
    video_fps: float | None = 1.0
    max_video_frames: int | None = 64
    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    mask_mode: str = "track"
    prompt_frames: str = "first"
    use_cache: bool = True

    def __post_init__(self) -> None:
        from videoglamm.typecheck import check_field_types

        try:
            check_field_types(type(self), self.__dict__, "predict option")
        except ConfigError as err:
            raise InputError(str(err).replace("predict option.", "predict option ")) from None
        try:  # the same rules as the saved defaults, with this call's values
            InferenceConfig(num_frames=self.num_frames, frame_sampling=self.frame_sampling, video_fps=self.video_fps,
                            max_video_frames=self.max_video_frames, max_new_tokens=self.max_new_tokens,
                            mask_mode=self.mask_mode, prompt_frames=self.prompt_frames)
        except (ConfigError, TypeError) as err:
            raise InputError(str(err).replace("inference.", "")) from None
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise InputError(f"sampling needs temperature > 0 and 0 < top_p <= 1, got temperature={self.temperature}, "
                             f"top_p={self.top_p}; for deterministic answers leave do_sample=False")

    @classmethod
    def for_model(cls, config: "VideoGLaMMConfig", **overrides: Any) -> "PredictOptions":
        """The model's inference defaults (`config.inference`) with `overrides` applied.

        Raises:
            InputError: an unknown option (the known ones are listed).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InputError(f"unknown predict option(s) {unknown}; known options: {sorted(known)}")
        opts = cls(**{**dataclasses.asdict(config.inference), **overrides})
        segment = config.sampling.segment_frames
        if opts.num_frames is not None and opts.num_frames % segment:
            raise InputError(f"num_frames must be a multiple of the video tower's segment length {segment}, "
                             f"got {opts.num_frames}")
        return opts


class _Source:
    """Random access for the encoder frames plus an in-order frame iterator for SAM2.

    `pool` lists the source frames the encoders choose from: for a video file, the official decoding
    (`video_fps`, `max_video_frames`); for a frame folder or frames in memory, all of them.
    """

    def __init__(self, video: VideoLike, opts: PredictOptions | None = None) -> None:
        opts = opts or PredictOptions()
        if isinstance(video, (str, bytes)) or hasattr(video, "__fspath__"):
            self._file: VideoFile | FrameFolder | None = (
                FrameFolder(video) if os.path.isdir(video) else VideoFile(video)
            )
            self._frames = None
            self.num_frames = len(self._file)
            first = self._file.get([0])[0]
            if isinstance(self._file, FrameFolder):  # a folder is used whole, like frames in memory
                self.pool = list(range(self.num_frames))
            else:
                self.pool = decoded_frame_pool(self.num_frames, self._file.fps, opts.video_fps, opts.max_video_frames)
        else:
            self._file = None
            self._frames = as_frames(video)
            self.num_frames = self._frames.shape[0]
            first = self._frames[0]
            self.pool = list(range(self.num_frames))
        self.size = (int(first.shape[0]), int(first.shape[1]))

    def encoder_indices(self, processor: "VideoGLaMMProcessor", opts: PredictOptions) -> list[int]:
        """The source frames the encoders see under `opts`."""
        if opts.frame_indices is not None:
            return processor.encoder_frame_indices(self.num_frames, None, opts.frame_indices, opts.num_frames)
        local = processor.encoder_frame_indices(len(self.pool), opts.frame_sampling, None, opts.num_frames)
        return [self.pool[i] for i in local]

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        return self._file.get(indices) if self._file is not None else self._frames[list(indices)]

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self._file.iter_frames() if self._file is not None else iter(self._frames)


@dataclass
class StreamingPrediction:
    """The answer of `predict_stream`; iterating yields `(frame_index, masks (K, H, W) bool, scores (K,))`
    for every frame of the video, computed as the iteration advances."""

    text: str
    phrases: list[str]
    frame_indices: list[int]
    num_frames: int
    size: tuple[int, int]
    seg_embeddings: torch.Tensor
    _frames: Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = field(repr=False, default=iter(()))

    @property
    def num_objects(self) -> int:
        """K: mask tracks per frame (one per decoded `[SEG]`)."""
        return self.seg_embeddings.shape[0]

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        return ((index, masks, scores) for index, _, masks, scores in self._frames)

    def with_frames(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Like iterating, with the source frame too: `(frame_index, frame uint8 (H, W, 3), masks, scores)`."""
        return self._frames


def stop_token_ids(config: "VideoGLaMMConfig", tokenizer: Any) -> set[int]:
    """Ids that end an answer: the end-of-text id and the chat tags `<|end|>` and `<|assistant|>` where the
    tokenizer has them as single tokens (for Phi-3: {32000, 32001, 32007}, its generation config's)."""
    vocab = tokenizer.get_vocab()
    return {config.llm.eos_token_id} | {vocab[tag] for tag in (END_TAG, ASSISTANT_TAG) if tag in vocab}


def encode_frames_for_answers(model: "VideoGLaMM", processor: "VideoGLaMMProcessor", frames: torch.Tensor) -> torch.Tensor:
    """The visual tokens of the encoder frames, uint8 (N, H, W, 3), for `answer_with`."""
    image_views, video_views = processor.encoder_views(frames)
    device, dtype = model.device, model.dtype
    with torch.no_grad():
        return model.encode_video(image_views[None].to(device, dtype), video_views[None].to(device, dtype))


def answer_with(
    model: "VideoGLaMM", processor: "VideoGLaMMProcessor", visual: torch.Tensor, indices: list[int],
    prompts: Sequence[str], opts: PredictOptions, generator: torch.Generator | None,
) -> list[tuple[str, list[int], torch.Tensor, list[int]]]:
    """Generate an answer per prompt from encoded frames (`encode_frames_for_answers`).

    Args:
        visual: the visual tokens of the `indices` frames.
        generator: the sampling generator, shared by the prompts in order (None: the global one).

    Returns:
        per prompt: (text, generated ids, projected SEG embeddings (K, D), encoder frame indices).
    """
    device, dtype = model.device, model.dtype
    tok = processor.tokenizer
    stop_ids = stop_token_ids(model.config, tok)
    results = []
    for prompt in prompts:
        ids, _ = processor.tokenize(prompt, num_frames=len(indices))
        input_ids = torch.tensor([ids], device=device)
        with torch.no_grad():
            embeds = model.embed_inputs(input_ids, visual)
            _check_context(model.config, embeds.shape[1], len(indices), opts.max_new_tokens)
            out = generate(
                model.language_model, embeds, seg_token_id=model.config.tokens.seg_token_id, stop_ids=stop_ids,
                hidden_source=model.config.seg_projector.hidden_source, max_new_tokens=opts.max_new_tokens,
                use_cache=opts.use_cache, do_sample=opts.do_sample, temperature=opts.temperature,
                top_p=opts.top_p, generator=generator, phrase_index=processor.generated_phrase_index,
            )
            seg = model.seg_projector(out.seg_hidden.to(dtype))
        results.append((processor.decode(out.token_ids), out.token_ids, seg, indices))
    return results


def answer(
    model: "VideoGLaMM", processor: "VideoGLaMMProcessor", source: _Source, prompts: Sequence[str], opts: PredictOptions
) -> list[tuple[str, list[int], torch.Tensor, list[int]]]:
    """Encode the video once and generate an answer per prompt.

    Returns:
        per prompt: (text, generated ids, projected SEG embeddings (K, D), encoder frame indices).
    """
    indices = source.encoder_indices(processor, opts)
    visual = encode_frames_for_answers(model, processor, source.get(indices))
    generator = torch.Generator().manual_seed(opts.seed) if opts.seed is not None else None
    return answer_with(model, processor, visual, indices, prompts, opts, generator)


def _prediction(session: "VideoSession", prompt: "SessionPrompt") -> StreamingPrediction:
    """The stream of a session that holds this one prompt's objects."""
    frames = ((o.frame_idx, o.frame, o.masks, o.scores) for o in session.propagate())
    return StreamingPrediction(
        text=prompt.text, phrases=prompt.phrases, frame_indices=prompt.encoder_frames,
        num_frames=session.num_frames, size=session.size, seg_embeddings=prompt.seg_embeddings, _frames=frames,
    )


def check_prompts_container(prompts: Any) -> list[Any]:
    """`prompts` as a list, when it is a list or tuple.

    Raises:
        InputError: anything else (a prompt must be a string or a list of strings).
    """
    if not isinstance(prompts, (list, tuple)):
        raise InputError(f"the prompt must be a string or a list of strings, got {type(prompts).__name__}")
    return list(prompts)


def check_prompts(prompts: Any) -> list[str]:
    """The prompts as a list of non-blank strings.

    Raises:
        InputError: no prompt, a prompt that is not a string, or a blank one.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)):
        raise InputError(f"the prompt must be a string or a list of strings, got {type(prompts).__name__}")
    if not prompts:
        raise InputError("no prompt given")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise InputError(f"prompt {i} must be a string, got {type(prompt).__name__} ({prompt!r:.60})")
        if not prompt.strip():
            raise InputError(f"prompt {i} is empty; pass the question as text")
    return list(prompts)


def _check_context(config: "VideoGLaMMConfig", length: int, frames: int, max_new_tokens: int) -> None:
    """Refuse a prompt the LLM cannot attend to whole: neither cut nor run past its positions silently."""
    limit = config.llm.max_position_embeddings
    if length >= limit:
        raise InputError(f"the prompt is too long: {length} tokens with the video's visual tokens ({frames} encoder "
                         f"frames), the LLM's context is {limit} tokens; shorten the prompt or use fewer num_frames")
    if length + max_new_tokens > limit:
        raise InputError(f"the prompt ({length} tokens with the visual tokens) plus max_new_tokens={max_new_tokens} "
                         f"exceed the LLM's context of {limit} tokens; use max_new_tokens <= {limit - length} or a "
                         "shorter prompt")


def _mask_stream(
    model: "VideoGLaMM", processor: "VideoGLaMMProcessor", source: _Source, prompts: torch.Tensor,
    prompt_frames: list[int], mode: str,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """`(frame_index, frame, masks (K, H, W), scores (K,))` of K prompt tokens; in track mode prompted at
    `prompt_frames`, framewise from frame 0."""
    from videoglamm.modeling.session import VideoSession

    session = VideoSession(model, processor, source, dataclasses.replace(PredictOptions(), mask_mode=mode))
    if prompts.shape[0]:
        if mode == "track":
            session._groups.append(session._tracked_group(list(range(prompts.shape[0])), prompts, list(prompt_frames)))
        else:
            session.add_prompt_embeddings(prompts, 0)
    return ((o.frame_idx, o.frame, o.masks, o.scores) for o in session.propagate())


def predict_stream(
    model: "VideoGLaMM", processor: "VideoGLaMMProcessor", video: VideoLike, prompt: str, opts: PredictOptions
) -> StreamingPrediction:
    """Generate the answer now; compute masks frame by frame as the result is iterated."""
    prompt = check_prompts([prompt])[0]
    if video is None:
        raise InputError("predict needs a video (a file, a frame folder, frames); got None. For a live source, "
                         "open model.init_video_session() and push frames with add_frame()")
    from videoglamm.modeling.session import VideoSession

    session = VideoSession(model, processor, video, opts)
    session.add_text_prompt(prompt)
    return _prediction(session, session.prompts[0])


def _stream_for(
    model: "VideoGLaMM", processor: "VideoGLaMMProcessor", source: _Source, text: str, seg: torch.Tensor,
    indices: list[int], opts: PredictOptions,
) -> StreamingPrediction:
    """The stream of K given prompt tokens `seg` on `source` (as if `text` were their answer)."""
    from videoglamm.modeling.session import VideoSession

    session = VideoSession(model, processor, source, opts)
    session._add("", text, seg, 0, list(indices))
    return _prediction(session, session.prompts[0])


def collect(stream: StreamingPrediction) -> GroundingResult:
    """Run a stream to the end and stack the masks into (T, H, W) tracks."""
    k = stream.seg_embeddings.shape[0]
    h, w = stream.size
    masks = torch.zeros(k, stream.num_frames, h, w, dtype=torch.bool)
    scores = torch.zeros(k, stream.num_frames)
    for index, frame_masks, frame_scores in stream:
        masks[:, index] = frame_masks
        scores[:, index] = frame_scores
    return GroundingResult(
        text=stream.text, phrases=stream.phrases, masks=list(masks.unbind(0)), scores=scores,
        frame_indices=stream.frame_indices,
    )


def predict_many(
    model: "VideoGLaMM", processor: "VideoGLaMMProcessor", video: VideoLike, prompts: Sequence[str], opts: PredictOptions
) -> list[GroundingResult]:
    """Several prompts on one video: the video is encoded once and read once, each frame's SAM2
    features shared by the prompts' objects."""
    if video is None:
        raise InputError("predict needs a video (a file, a frame folder, frames); got None. For a live source, "
                         "open model.init_video_session() and push frames with add_frame()")
    from videoglamm.modeling.session import VideoSession

    prompts = check_prompts(prompts)
    session = VideoSession(model, processor, video, opts)
    for prompt in prompts:
        session.add_text_prompt(prompt)
    t, (h, w) = session.num_frames, session.size
    n = len(session.object_ids)
    masks = torch.zeros(n, t, h, w, dtype=torch.bool)
    scores = torch.zeros(n, t)
    for out in session.propagate():
        masks[:, out.frame_idx] = out.masks
        scores[:, out.frame_idx] = out.scores
    results, first = [], 0
    for p in session.prompts:
        rows = slice(first, first + len(p.object_ids))
        first += len(p.object_ids)
        results.append(GroundingResult(text=p.text, phrases=p.phrases, masks=list(masks[rows].unbind(0)),
                                       scores=scores[rows], frame_indices=p.encoder_frames))
    return results
