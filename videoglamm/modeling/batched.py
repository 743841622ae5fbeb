"""Batched inference: several videos, several prompts each, in as few model calls as the parts allow.

1. The encoder views of all videos go through `encode_video` in one call (videos whose views have the
   same shape are stacked; the views only differ in T when explicit `frame_indices` differ).
2. Every (video, prompt) pair is decoded together by `generate_batch` (left padding, one KV cache, each
   row stopping on its own).
3. For each video, the `[SEG]` prompts of all its answers are tracked by SAM2 in one pass over the frames
   (K_total objects in one state), then split back per answer.

Greedy results equal one-at-a-time `predict_many` calls: the same text, the same masks (see the tests).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Iterator, Sequence

import torch

from videoglamm.errors import InputError
from videoglamm.modeling.generation import generate_batch
from videoglamm.modeling.mask_decoder import FrameFeatures
from videoglamm.modeling.outputs import GroundingResult
from videoglamm.modeling.predict import (
    _PHRASE, PredictOptions, _check_context, _mask_stream, _Source, check_prompts, stop_token_ids,
)

if TYPE_CHECKING:
    from videoglamm.modeling.videoglamm import VideoGLaMM
    from videoglamm.processing.processor import VideoGLaMMProcessor
    from videoglamm.processing.video_io import VideoLike

FRAME_CHUNK = 8  # frames per SAM2 call in frame-wise mode (the image encoder batches over them)
Answer = tuple[str, list[int], torch.Tensor, list[int]]  # text, generated ids, SEG embeddings (K, D), frames


def nest_prompts(num_videos: int, prompts: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
    """Per-video prompt lists: `prompts[i]` for video i, or one flat list asked of every video.

    Raises:
        InputError: no videos, a video without prompts, or a nested list of another length than the videos.
    """
    if num_videos == 0:
        raise InputError("no video given")
    if isinstance(prompts, str):
        return [[prompts] for _ in range(num_videos)]
    if all(isinstance(p, str) for p in prompts):
        nested = [list(prompts) for _ in range(num_videos)]
    elif any(isinstance(p, str) for p in prompts):
        raise InputError("prompts mix strings and lists; give one list per video, or one flat list for every video")
    else:
        nested = [list(p) for p in prompts]
    if len(nested) != num_videos:
        raise InputError(f"{len(nested)} prompt lists for {num_videos} videos; give one list per video, "
                         "or one flat list of prompts to ask every video")
    empty = [i for i, p in enumerate(nested) if not p]
    if empty:
        raise InputError(f"video(s) {empty} have no prompt")
    return nested


def is_video_list(value: object) -> bool:
    """True for a list of videos (video files, frame folders, (T, H, W, 3) arrays, frame lists), False for one
    video given as a list of frames (PIL images, (H, W, 3) arrays or image file paths)."""
    import os

    from videoglamm.processing.frame_folder import FRAME_SUFFIXES

    if not isinstance(value, (list, tuple)) or not value:
        return False
    if all(isinstance(v, (str, os.PathLike)) and os.path.splitext(str(v))[1].lower() in FRAME_SUFFIXES
           for v in value):
        return False  # image files: the frames of one video
    return all(isinstance(v, (str, bytes, os.PathLike, list, tuple)) or getattr(v, "ndim", None) == 4 for v in value)


def encode_videos(model: "VideoGLaMM", processor: "VideoGLaMMProcessor", sources: Sequence[_Source],
                  opts: PredictOptions) -> tuple[list[torch.Tensor], list[list[int]]]:
    """Visual tokens per video, (N, hidden) each, and the encoder frame indices of each video."""
    indices = [source.encoder_indices(processor, opts) for source in sources]
    views = [processor.encoder_views(source.get(idx)) for source, idx in zip(sources, indices)]
    device, dtype = model.device, model.dtype
    visual: list[torch.Tensor | None] = [None] * len(sources)
    groups: dict[tuple, list[int]] = {}
    for i, (image, video) in enumerate(views):
        groups.setdefault((tuple(image.shape), tuple(video.shape)), []).append(i)
    with torch.no_grad():
        for members in groups.values():
            image = torch.stack([views[i][0] for i in members]).to(device, dtype)
            video = torch.stack([views[i][1] for i in members]).to(device, dtype)
            for i, tokens in zip(members, model.encode_video(image, video)):
                visual[i] = tokens
    return visual, indices


def answer_batch(model: "VideoGLaMM", processor: "VideoGLaMMProcessor", sources: Sequence[_Source],
                 prompts: Sequence[Sequence[str]], opts: PredictOptions) -> list[list[Answer]]:
    """Encode every video once and decode every (video, prompt) pair in one batch.

    Returns:
        per video, per prompt: (text, generated ids, projected SEG embeddings (K, D), encoder frame indices).
    """
    visual, indices = encode_videos(model, processor, sources, opts)
    device, dtype = model.device, model.dtype
    embeds, pairs = [], []
    with torch.no_grad():
        for v, video_prompts in enumerate(prompts):
            for prompt in video_prompts:
                ids, _ = processor.tokenize(prompt, num_frames=len(indices[v]))
                embeds.append(model.embed_inputs(torch.tensor([ids], device=device), visual[v][None])[0])
                _check_context(model.config, embeds[-1].shape[0], len(indices[v]), opts.max_new_tokens)
                pairs.append(v)
        generator = torch.Generator().manual_seed(opts.seed) if opts.seed is not None else None
        outs = generate_batch(
            model.language_model, embeds, seg_token_id=model.config.tokens.seg_token_id,
            stop_ids=stop_token_ids(model.config, processor.tokenizer),
            hidden_source=model.config.seg_projector.hidden_source, max_new_tokens=opts.max_new_tokens,
            use_cache=opts.use_cache, do_sample=opts.do_sample, temperature=opts.temperature, top_p=opts.top_p,
            generator=generator, phrase_index=processor.generated_phrase_index,
        )
        answers: list[list[Answer]] = [[] for _ in prompts]
        for v, out in zip(pairs, outs):
            # One projection per answer, as the one-at-a-time path, so the embeddings are the same bits.
            seg = model.seg_projector(out.seg_hidden.to(dtype))
            answers[v].append((processor.decode(out.token_ids), out.token_ids, seg, indices[v]))
    return answers


def track_answers(model: "VideoGLaMM", processor: "VideoGLaMMProcessor", source: _Source,
                  answers: Sequence[Answer], opts: PredictOptions) -> list[GroundingResult]:
    """All objects of all answers of one video tracked in one SAM2 pass, split back per answer."""
    counts = [seg.shape[0] for _, _, seg, _ in answers]
    prompts = torch.cat([seg for _, _, seg, _ in answers]) if answers else torch.zeros(0)
    indices = answers[0][3]
    prompt_frames = [0] if opts.prompt_frames == "first" else sorted(set(indices))
    h, w = source.size
    masks = torch.zeros(sum(counts), source.num_frames, h, w, dtype=torch.bool)
    scores = torch.zeros(sum(counts), source.num_frames)
    if opts.mask_mode == "framewise" and prompts.shape[0]:
        stream = _framewise_chunks(model, processor, source, prompts)
    else:
        stream = ((i, m, s) for i, _, m, s in _mask_stream(model, processor, source, prompts, prompt_frames,
                                                            opts.mask_mode))
    for index, frame_masks, frame_scores in stream:
        masks[:, index] = frame_masks
        scores[:, index] = frame_scores
    results, start = [], 0
    for (text, _, _, frames), k in zip(answers, counts):
        results.append(GroundingResult(text=text, phrases=_PHRASE.findall(text),
                                       masks=list(masks[start:start + k].unbind(0)), scores=scores[start:start + k],
                                       frame_indices=frames))
        start += k
    return results


def _framewise_chunks(model: "VideoGLaMM", processor: "VideoGLaMMProcessor", source: _Source, prompts: torch.Tensor,
                      chunk: int = FRAME_CHUNK) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Frame-wise masks (no memory) of K prompts: SAM2's image encoder runs on `chunk` frames per call, the
    mask decoder on one frame at a time, as `_mask_stream` does (its per-frame results, bit for bit: the
    encoder's values do not depend on how many frames it sees; the decoder's would)."""
    device, dtype = model.device, model.dtype
    decoder, k, size = model.mask_decoder, prompts.shape[0], source.size
    frames = iter(source)
    start = 0
    with torch.no_grad():
        while True:
            block = list(itertools.islice(frames, chunk))
            if not block:
                return
            features = decoder.encode_frames(processor.sam_transform(torch.stack(block)).to(device, dtype))
            for i in range(len(block)):
                out = decoder.decode(_frame(features, i), prompts[None])
                logits = decoder.upsample(out.mask_logits, size)[0]  # (K, H, W)
                yield start + i, (logits > 0).cpu(), out.object_score_logits.reshape(k).float().cpu()
            start += len(block)


def _frame(features: FrameFeatures, i: int) -> FrameFeatures:
    """Frame i of N frames' features, as contiguous tensors (as if it had been encoded alone)."""
    one = slice(i, i + 1)
    return FrameFeatures(
        image_embed=features.image_embed[one].contiguous(),
        high_res=None if features.high_res is None else [x[one].contiguous() for x in features.high_res],
        vision_feats=[x[:, one].contiguous() for x in features.vision_feats],
        vision_pos_embeds=[x[:, one].contiguous() for x in features.vision_pos_embeds],
        feat_sizes=list(features.feat_sizes),
    )


def predict_batch(model: "VideoGLaMM", processor: "VideoGLaMMProcessor", videos: Sequence["VideoLike"],
                  prompts: Sequence[str] | Sequence[Sequence[str]], opts: PredictOptions) -> list[list[GroundingResult]]:
    """Answer several prompts on several videos in batches (see the module doc).

    Args:
        videos: file paths, frame arrays (T, H, W, 3) or lists of PIL images.
        prompts: one list of prompts per video, or one flat list asked of every video.
        opts: `PredictOptions`, shared by all videos.

    Returns:
        `results[i][j]`: the `GroundingResult` of prompt j on video i.

    Raises:
        InputError: no videos, a video without prompts, prompt lists that do not match the videos, a bad video.
    """
    nested = [check_prompts(p) for p in nest_prompts(len(videos), prompts)]
    missing = [i for i, video in enumerate(videos) if video is None]
    if missing:
        raise InputError(f"predict needs a video (a file, a frame folder, frames); got None for video(s) {missing}. "
                         "For a live source, open model.init_video_session() and push frames with add_frame()")
    sources = [_Source(video, opts) for video in videos]
    answers = answer_batch(model, processor, sources, nested, opts)
    return [track_answers(model, processor, source, video_answers, opts)
            for source, video_answers in zip(sources, answers)]
