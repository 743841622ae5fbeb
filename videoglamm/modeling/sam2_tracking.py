"""Streaming SAM2 video tracking of K objects prompted by embeddings, with bounded memory.

The official VideoGLaMM video branch prompts frame 0 with every [SEG] embedding through a vendored
`add_new_text`, which calls `SAM2Base._forward_sam_heads` with `point_inputs=None` (SAM2 then inserts a
padding point, label -1, and the prompt encoder pads one more) and appends the text token after them.
Here the installed sam2 is driven as is: a temporary forward hook on `sam_prompt_encoder`
(`append_sparse_prompts`), active only while a prompted frame is decoded, appends the tokens to the
sparse embeddings. Per frame the tracker runs SAM2's own `_prepare_memory_conditioned_features`,
`_forward_sam_heads` and `_encode_new_memory` with the objects as the batch, as the video predictor does.

Memory is SAM2's `output_dict` ({"cond_frame_outputs", "non_cond_frame_outputs"}), trimmed after every
frame to what SAM2 can still attend to (`MemoryBank.trim`), so memory does not grow with video length.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from videoglamm.errors import InputError, ShapeMismatchError

if TYPE_CHECKING:
    from sam2.modeling.sam2_base import SAM2Base

    from videoglamm.modeling.mask_decoder import FrameFeatures, SAM2MaskDecoder


@contextlib.contextmanager
def append_sparse_prompts(prompt_encoder: nn.Module, tokens: Tensor) -> Iterator[None]:
    """While active, every `prompt_encoder(...)` call gets `tokens` appended to its sparse embeddings.

    Args:
        prompt_encoder: SAM2's `sam_prompt_encoder`.
        tokens: (B, T, D) tokens appended after the point/box embeddings of each of the B prompts.

    Raises:
        ShapeMismatchError: (inside the call) the prompt batch is not B or the width is not D.
    """

    def hook(module: nn.Module, args: Any, output: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        sparse, dense = output
        if sparse.shape[0] != tokens.shape[0] or sparse.shape[2] != tokens.shape[2]:
            raise ShapeMismatchError(
                f"prompt tokens {tuple(tokens.shape)} do not fit sparse embeddings {tuple(sparse.shape)}: "
                "one row of tokens per prompted object and the prompt encoder's width are required"
            )
        return torch.cat([sparse, tokens.to(device=sparse.device, dtype=sparse.dtype)], dim=1), dense

    handle = prompt_encoder.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def refresh_meta_rope_caches(model: "SAM2Base") -> None:
    """Recompute RoPE frequency tables that were created on the meta device.

    `RoPEAttention` keeps its table as a plain attribute, so `to_empty`/`load_state_dict` after a
    meta-device build leave it on meta; SAM2 would recompute it on a size change only.
    """
    from sam2.modeling.sam.transformer import RoPEAttention

    side = model.sam_image_embedding_size
    for module in model.modules():
        if isinstance(module, RoPEAttention) and module.freqs_cis.is_meta:
            module.freqs_cis = module.compute_cis(end_x=side, end_y=side)


class _StoredOutput(dict):
    """A frame's stored output whose spatial memory is kept in a narrower dtype (SAM2's video predictor
    keeps `maskmem_features` in bfloat16) and handed to SAM2 in the dtype it was computed in."""

    def __init__(self, out: dict[str, Any], storage_dtype: torch.dtype) -> None:
        super().__init__(out)
        features = out["maskmem_features"]
        self.compute_dtype = features.dtype
        dict.__setitem__(self, "maskmem_features", features.to(storage_dtype))

    def __getitem__(self, key: str) -> Any:
        value = dict.__getitem__(self, key)
        return value.to(self.compute_dtype) if key == "maskmem_features" else value

    def stored(self, key: str) -> Any:
        """The value as stored (for `maskmem_features`: in the storage dtype)."""
        return dict.__getitem__(self, key)


class MemoryBank:
    """SAM2's per-video `output_dict`, trimmed to what the next frames can attend to.

    For frame g, SAM2 reads (forward tracking):
      * spatial memories (`maskmem_features`) of the non-conditioning frames g-1 ... g-(num_maskmem-1)
        (every `memory_temporal_stride_for_eval`-th frame in eval), at most (num_maskmem-1)*stride back;
      * object pointers of the non-conditioning frames g-1 ... g-(max_obj_ptrs_in_encoder-1);
      * the conditioning (prompt) frames: all of them, or the `max_cond_frames_in_attn` temporally
        closest ones (the most recent, when moving forward) when that is not -1; older ones act as
        ordinary frames inside the windows above.
    `trim` drops entries outside these windows and keeps only the pointer of entries outside the
    spatial window. With `retain_all=True` nothing is dropped (to check that trimming changes nothing).

    Args:
        model: the tracked `SAM2Base` (its config and train/eval mode decide the windows).
        retain_all: keep every entry (memory then grows with the video).
        storage_dtype: keep spatial memories in this dtype (the official video predictor: bfloat16,
            half the bank's size; SAM2 reads them back as float32(bfloat16(x))); None keeps them as computed.
    """

    def __init__(self, model: "SAM2Base", retain_all: bool = False, storage_dtype: torch.dtype | None = None) -> None:
        self.model = model
        self.retain_all = retain_all
        self.storage_dtype = storage_dtype
        self.output_dict: dict[str, dict[int, dict[str, Any]]] = {
            "cond_frame_outputs": {},
            "non_cond_frame_outputs": {},
        }
        self._pos_enc: list[Tensor] | None = None

    def __len__(self) -> int:
        """Number of stored frame entries (conditioning and not)."""
        return sum(len(store) for store in self.output_dict.values())

    @property
    def num_spatial(self) -> int:
        """Number of stored entries that still hold a spatial memory."""
        return sum("maskmem_features" in out for store in self.output_dict.values() for out in store.values())

    def windows(self) -> tuple[int, int]:
        """(spatial, pointer): how many frames back SAM2 reads spatial memories and object pointers."""
        m = self.model
        stride = 1 if m.training else m.memory_temporal_stride_for_eval
        spatial = (m.num_maskmem - 1) * stride if m.num_maskmem > 0 else 0
        pointer = m.max_obj_ptrs_in_encoder - 1 if m.use_obj_ptrs_in_encoder else 0
        return spatial, pointer

    def add(self, frame_idx: int, out: dict[str, Any], is_cond: bool) -> None:
        """Store a frame's output: `maskmem_features`, `maskmem_pos_enc` and `obj_ptr`."""
        if out.get("maskmem_pos_enc") is not None:
            # The positional encoding is the same for every frame; keep one copy like the predictor.
            if self._pos_enc is None or [p.shape for p in self._pos_enc] != [p.shape for p in out["maskmem_pos_enc"]]:
                self._pos_enc = out["maskmem_pos_enc"]
            out = {**out, "maskmem_pos_enc": self._pos_enc}
        if self.storage_dtype is not None and out.get("maskmem_features") is not None:
            out = _StoredOutput(out, self.storage_dtype)
        store = "cond_frame_outputs" if is_cond else "non_cond_frame_outputs"
        self.output_dict[store][frame_idx] = out

    def select_objects(self, rows: Sequence[int]) -> None:
        """Keep only the objects at batch `rows` in every stored entry (the others stop being tracked).

        SAM2 treats the objects of a batch independently, so the kept rows' memories are unchanged.
        """
        index = list(rows)

        def pick(value: Any) -> Any:
            if isinstance(value, Tensor):
                return value[index]
            if isinstance(value, list):
                return [pick(v) for v in value]
            return value

        if self._pos_enc is not None:
            self._pos_enc = pick(self._pos_enc)
        for store in self.output_dict.values():
            for t, out in list(store.items()):
                raw = {key: out.stored(key) if isinstance(out, _StoredOutput) else out[key] for key in out}
                picked = {key: (self._pos_enc if key == "maskmem_pos_enc" else pick(v)) for key, v in raw.items()}
                if isinstance(out, _StoredOutput):  # already in the storage dtype: no second rounding
                    kept = _StoredOutput(picked, picked["maskmem_features"].dtype)
                    kept.compute_dtype = out.compute_dtype
                    picked = kept
                store[t] = picked

    def trim(self, next_frame_idx: int) -> None:
        """Drop what frames from `next_frame_idx` on can no longer read (see the class docstring)."""
        if self.retain_all:
            return
        spatial, pointer = self.windows()
        keep_from = next_frame_idx - max(spatial, pointer)
        spatial_from = next_frame_idx - spatial

        def prune(store: dict[int, dict[str, Any]], protected: set[int]) -> None:
            for t in list(store):
                if t in protected:
                    continue
                if t < keep_from:
                    del store[t]
                elif t < spatial_from and "maskmem_features" in store[t]:
                    store[t] = {"obj_ptr": store[t]["obj_ptr"]}

        prune(self.output_dict["non_cond_frame_outputs"], protected=set())
        cond = self.output_dict["cond_frame_outputs"]
        cap = self.model.max_cond_frames_in_attn
        if cap != -1 and len(cond) > cap:
            from sam2.modeling.sam2_utils import select_closest_cond_frames

            # Forward tracking never gets closer to an older prompt frame: SAM2's choice for the next
            # frame stays its choice until a new prompt frame arrives.
            selected, _ = select_closest_cond_frames(next_frame_idx, cond, cap)
            prune(cond, protected=set(selected))
            if len(cond) <= cap:
                # SAM2 then reads the dict in its own order instead of selecting; keep the order it
                # would have selected in, so memory tokens are concatenated exactly as without trimming.
                ordered = {t: cond[t] for t in selected}
                cond.clear()
                cond.update(ordered)


@dataclass
class TrackStep:
    """Tracking output of one frame for the K objects (batch dim = objects, in prompt order).

    Attributes:
        frame_index: index of the frame in the input iterable.
        mask_logits: (K, 1, S/4, S/4) low-res logits; > 0 = mask; -1024 where SAM2 predicts the object
            absent. Resize with `SAM2MaskDecoder.upsample`.
        object_score_logits: (K, 1) object-presence logits (<= 0: absent).
        iou_predictions: (K, 1) predicted IoU of the returned mask.
        is_prompt_frame: whether the frame was a prompt (conditioning) frame.
    """

    frame_index: int
    mask_logits: Tensor
    object_score_logits: Tensor
    iou_predictions: Tensor
    is_prompt_frame: bool


class SAM2VideoTracker:
    """Track K objects with SAM2 memory over a lazily consumed frame iterable.

    Semantics (those of the official video predictor after `add_new_text` on the prompt frames, then
    `propagate_in_video` forward):
      * Frames before the first prompt frame are skipped: they are consumed but neither encoded nor
        yielded (the official propagation starts at the earliest prompted frame).
      * A prompt frame is an initial conditioning frame: decoded without memory (`no_mem_embed`),
        sparse prompt = SAM2's padding point(s) then the object's token, multimask by SAM2's rule
        unless disabled; its memory is encoded from the binarised mask (`is_mask_from_pts=True`).
      * Any other frame is conditioned on the memory bank and decoded with no prompt tokens, unless
        `prompts_per_frame` supplies some (SAMWISE-style).
      * Spatial memories are stored in `memory_dtype` (bfloat16, as the predictor stores them) and read
        back in the compute dtype; autograd follows the caller's grad mode, so training through memory
        works (the cast is differentiable; pass `memory_dtype=None` to keep them exact).

    Args:
        decoder: the `SAM2MaskDecoder` whose `model` is driven.
        prompt_frames: indices of the prompted frames.
        multimask_on_prompt_frames: follow SAM2's multimask rule on prompt frames (False: single mask).
        multimask_on_tracked_frames: the same on the other frames.
        num_frames: video length if known; None = a stream of unknown length (SAM2's pointer cap is then
            `max_obj_ptrs_in_encoder`; a known length caps it at `min(num_frames, max_obj_ptrs_in_encoder)`,
            which matters for videos shorter than that).
        retain_all_memory: keep every memory entry (unbounded; to verify trimming).
        memory_dtype: dtype the spatial memories are stored in (None: as computed).

    Raises:
        InputError: `prompt_frames` is empty, negative or repeated.
    """

    def __init__(
        self,
        decoder: "SAM2MaskDecoder",
        prompt_frames: Sequence[int] = (0,),
        *,
        multimask_on_prompt_frames: bool = True,
        multimask_on_tracked_frames: bool = True,
        num_frames: int | None = None,
        retain_all_memory: bool = False,
        memory_dtype: torch.dtype | None = torch.bfloat16,
    ) -> None:
        frames = [int(t) for t in prompt_frames]
        if not frames or min(frames) < 0 or len(set(frames)) != len(frames):
            raise InputError(f"prompt_frames must be distinct non-negative frame indices; got {list(prompt_frames)}")
        self.decoder = decoder
        self.model = decoder.model
        self.prompt_frames = tuple(sorted(frames))
        self.multimask_on_prompt_frames = multimask_on_prompt_frames
        self.multimask_on_tracked_frames = multimask_on_tracked_frames
        self.num_frames = num_frames
        self.memory = MemoryBank(self.model, retain_all=retain_all_memory, storage_dtype=memory_dtype)
        self._num_objects: int | None = None

    def track(
        self,
        frames: Iterable[Tensor],
        prompts: Tensor | None,
        prompts_per_frame: Callable[[int], Tensor] | None = None,
    ) -> Iterator[TrackStep]:
        """Track through `frames`, yielding one `TrackStep` per frame from the first prompt frame on.

        Args:
            frames: iterable of (3, S, S) SAM2-normalised frames in video order.
            prompts: (K, D) tokens for every prompt frame, or None to take them from `prompts_per_frame`.
            prompts_per_frame: optional `frame_index -> (K, D)`; used on prompt frames when `prompts` is
                None, and appended on every other tracked frame.

        Returns:
            A generator of `TrackStep`.

        Raises:
            InputError: no prompts at all; (at the end) the video ended before a prompt frame.
            ShapeMismatchError: a prompt is not (K, D) or a frame is not (3, S, S).
        """
        if prompts is None and prompts_per_frame is None:
            raise InputError("track needs `prompts` (K, D) or a `prompts_per_frame` callable")
        if prompts is not None:
            self._check_tokens(prompts, "prompts")
        return self._run(frames, prompts, prompts_per_frame)

    @property
    def num_objects(self) -> int | None:
        """K, once the first prompt tokens fixed it."""
        return self._num_objects

    def keep_objects(self, rows: Sequence[int]) -> None:
        """Stop tracking every object but those at batch `rows` (their memories are kept as they are).

        Raises:
            InputError: `rows` is empty, repeated or outside the K tracked objects.
        """
        k = self._num_objects or 0
        rows = [int(r) for r in rows]
        if not rows or len(set(rows)) != len(rows) or min(rows) < 0 or max(rows) >= k:
            raise InputError(f"keep_objects needs distinct rows in [0, {k}); got {rows}")
        self.memory.select_objects(rows)
        self._num_objects = len(rows)

    def _check_tokens(self, tokens: Tensor, what: str) -> None:
        d = self.model.hidden_dim
        if tokens.ndim != 2 or tokens.shape[1] != d or tokens.shape[0] == 0:
            raise ShapeMismatchError(f"{what} must be (K, D={d}) with K >= 1 objects; got {tuple(tokens.shape)}")
        if self._num_objects is None:
            self._num_objects = tokens.shape[0]
        elif tokens.shape[0] != self._num_objects:
            raise ShapeMismatchError(
                f"{what} has {tokens.shape[0]} objects but tracking started with {self._num_objects}; "
                "the object batch is fixed for a video"
            )

    def _run(
        self,
        frames: Iterable[Tensor],
        prompts: Tensor | None,
        prompts_per_frame: Callable[[int], Tensor] | None,
    ) -> Iterator[TrackStep]:
        refresh_meta_rope_caches(self.model)
        prompt_set = set(self.prompt_frames)
        seen = 0
        for frame_idx, frame in enumerate(frames):
            seen = frame_idx + 1
            if frame_idx < self.prompt_frames[0]:
                continue
            is_prompt = frame_idx in prompt_set
            tokens = None
            if is_prompt:
                tokens = prompts if prompts is not None else prompts_per_frame(frame_idx)  # type: ignore[misc]
            elif prompts_per_frame is not None:
                tokens = prompts_per_frame(frame_idx)
            yield self.step(frame_idx, frame, tokens, is_prompt)
        if seen <= self.prompt_frames[-1]:
            raise InputError(
                f"the video has {seen} frames but prompt frame {self.prompt_frames[-1]} was requested; "
                "prompt frames must lie inside the video"
            )

    def step(self, frame_idx: int, frame: Tensor, tokens: Tensor | None, is_prompt: bool) -> TrackStep:
        """Decode one frame with memory, store its memory and trim the bank.

        Args:
            frame_idx: absolute frame index (frames must come in increasing order).
            frame: (3, S, S) SAM2-normalised frame.
            tokens: (K, D) tokens appended to the sparse prompt, or None.
            is_prompt: whether this is a prompt (initial conditioning) frame.

        Returns:
            The frame's `TrackStep`.
        """
        model = self.model
        s = model.image_size
        if frame.shape != (3, s, s):
            raise ShapeMismatchError(f"frame {frame_idx} must be (3, {s}, {s}); got {tuple(frame.shape)}")
        param = model.no_mem_embed
        frame = frame.to(device=param.device, dtype=param.dtype)
        return self.step_features(frame_idx, self.decoder.encode_frames(frame.unsqueeze(0)), tokens, is_prompt)

    def step_features(self, frame_idx: int, features: "FrameFeatures", tokens: Tensor | None,
                      is_prompt: bool) -> TrackStep:
        """`step` on image features computed once for the frame (shared by several trackers).

        Args:
            frame_idx: absolute frame index (frames must come in increasing order).
            features: `FrameFeatures` of this one frame (`SAM2MaskDecoder.encode_frames` of (1, 3, S, S)).
            tokens: (K, D) tokens appended to the sparse prompt, or None.
            is_prompt: whether this is a prompt (initial conditioning) frame.

        Returns:
            The frame's `TrackStep`.

        Raises:
            InputError: no object yet (the first tracked frame must be a prompt frame with tokens).
            ShapeMismatchError: `features` hold more than one frame.
        """
        model = self.model
        if tokens is not None:
            self._check_tokens(tokens, f"prompt tokens of frame {frame_idx}")
        if self._num_objects is None:
            raise InputError("the first tracked frame must be a prompt frame with tokens")
        if features.num_frames != 1:
            raise ShapeMismatchError(f"step_features takes the features of one frame; got {features.num_frames}")
        k = self._num_objects
        feats = features.expand_frame(0, k)

        pix_feat = model._prepare_memory_conditioned_features(
            frame_idx=frame_idx,
            is_init_cond_frame=is_prompt,
            current_vision_feats=feats.vision_feats[-1:],
            current_vision_pos_embeds=feats.vision_pos_embeds[-1:],
            feat_sizes=feats.feat_sizes[-1:],
            output_dict=self.memory.output_dict,
            # Unknown length: unbounded. SAM2 caps pointers at min(num_frames, max_obj_ptrs_in_encoder) and
            # also stops reading pointers of frames >= num_frames, so a finite stand-in would drop them.
            num_frames=self.num_frames if self.num_frames is not None else sys.maxsize,
            track_in_reverse=False,
        )
        allow_multimask = self.multimask_on_prompt_frames if is_prompt else self.multimask_on_tracked_frames
        # No point inputs, as in the official text prompting: SAM2's rule then sees 0 points.
        multimask = allow_multimask and model._use_multimask(is_prompt, None)
        injection = (
            append_sparse_prompts(model.sam_prompt_encoder, tokens.unsqueeze(1))
            if tokens is not None
            else contextlib.nullcontext()
        )
        with injection:
            _, _, ious, low_res, high_res, obj_ptr, object_scores = model._forward_sam_heads(
                backbone_features=pix_feat,
                point_inputs=None,
                mask_inputs=None,
                high_res_features=feats.high_res,
                multimask_output=multimask,
            )

        out: dict[str, Any] = {"obj_ptr": obj_ptr}
        if model.num_maskmem > 0:  # with no memory slots SAM2 never reads spatial memories
            # Prompt frames count as user-prompted (`is_mask_from_pts`), as in the predictor's preflight.
            out["maskmem_features"], out["maskmem_pos_enc"] = model._encode_new_memory(
                current_vision_feats=feats.vision_feats,
                feat_sizes=feats.feat_sizes,
                pred_masks_high_res=high_res,
                object_score_logits=object_scores,
                is_mask_from_pts=is_prompt,
            )
        self.memory.add(frame_idx, out, is_cond=is_prompt)
        self.memory.trim(next_frame_idx=frame_idx + 1)
        return TrackStep(
            frame_index=frame_idx,
            mask_logits=low_res,
            object_score_logits=object_scores,
            iou_predictions=ious.max(dim=1, keepdim=True).values,
            is_prompt_frame=is_prompt,
        )
