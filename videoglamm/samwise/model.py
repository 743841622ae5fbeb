"""SAMWISE: frozen SAM2 and RoBERTa, CMT adapters between them, text prompts, and the CME.

`SAMWISE(config)` builds every part; the trainable set is declared once (`declare_trainable`): the CMT
adapters, the CME and the prompt projection, as the official filter (the motion projection stays frozen
unless `prompt.train_motion_projection`). A clip of T frames goes through early fusion
(`encode_clip`); its frames are then decoded one by one with SAM2 memory (`decode_frame`). Training
(`forward`) resets memory per clip; streaming inference (`videoglamm.samwise.streaming`) carries it
across clips with absolute frame indices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from videoglamm.errors import ShapeMismatchError
from videoglamm.modeling.mask_decoder import FrameFeatures, SAM2MaskDecoder, build_sam2_model
from videoglamm.modeling.sam2_tracking import MemoryBank, refresh_meta_rope_caches
from videoglamm.samwise.adapter import CMTAdapter
from videoglamm.samwise.cme import ConditionalMemoryEncoder, apply_switch, switch_pseudo_labels
from videoglamm.samwise.config import SAMWISEConfig
from videoglamm.samwise.decoding import condition_on_memory, decode_heads, encode_memory
from videoglamm.samwise.fusion import early_fusion
from videoglamm.samwise.losses import SAMWISEOutput, cme_loss, dice_loss, sigmoid_focal_loss
from videoglamm.samwise.processing import TextBatch, postprocess_logits
from videoglamm.samwise.prompts import VerbTagger, contextual_prompt, motion_prompt, prompt_mlp, verb_token_mask


def select_frames(feats: FrameFeatures, rows: Tensor) -> FrameFeatures:
    """The `FrameFeatures` of the given frame rows (e.g. frame t of each of B clips)."""
    return FrameFeatures(
        image_embed=feats.image_embed[rows],
        high_res=None if feats.high_res is None else [x[rows] for x in feats.high_res],
        vision_feats=[x[:, rows] for x in feats.vision_feats],
        vision_pos_embeds=[x[:, rows] for x in feats.vision_pos_embeds],
        feat_sizes=list(feats.feat_sizes),
    )


@dataclass
class TrackingState:
    """Per-video decoding state of B objects: SAM2 memory and the frame of each object's last CME switch."""

    memory: MemoryBank
    last_switch: Tensor
    valid_size: tuple[int, int] | None = None  # resized region inside the padded frames (CME pseudo-labels)
    cme_logits: list[Tensor] = field(default_factory=list)
    cme_labels: list[Tensor] = field(default_factory=list)


@dataclass
class FrameDecoding:
    """Decoding of one frame: (B, 1, s, s) low-res logits and (B,) object-score logits."""

    low_res: Tensor
    object_scores: Tensor


class SAMWISE(nn.Module):
    """Text-driven video segmentation with a frozen SAM2 (see the module docstring).

    Args:
        config: `SAMWISEConfig`.
        verb_tagger: caption -> verb character spans, for the motion prompt (spaCy by default when
            `prompt.motion_prompt`; tests inject a deterministic one).
    """

    def __init__(self, config: SAMWISEConfig, verb_tagger: VerbTagger | None = None) -> None:
        super().__init__()
        from transformers import RobertaModel

        self.config = config
        self.sam2 = SAM2MaskDecoder(build_sam2_model(config.sam2))
        self.text_encoder = RobertaModel(config.text.to_roberta(), add_pooling_layer=False)
        a, text_dim, dim = config.adapter, config.text.hidden_size, self.sam2.hidden_dim
        trunk = self.sam2.model.image_encoder.trunk
        stage_channels = [trunk.blocks[end].dim_out for end in trunk.stage_ends]
        self.adapters = nn.ModuleList(
            CMTAdapter(stage_channels[stage - 1], text_dim, a.dim, a.num_heads, patch, a.use_hsa, a.hsa_dropout, a.hsa_scope)
            for stage, patch in zip(a.fusion_stages, a.hsa_patch_sizes)
        )
        self.prompt_projection = prompt_mlp(text_dim, dim)
        self.motion_projection = prompt_mlp(text_dim, dim) if config.prompt.motion_prompt else None
        if self.motion_projection is not None:  # the official main.py starts it as a copy of project_text
            self.motion_projection.load_state_dict(self.prompt_projection.state_dict())
        c = config.cme
        self.conditional_memory_encoder = (
            ConditionalMemoryEncoder(dim, c.num_heads, c.ffn_dim, c.dropout) if c.enabled else None
        )
        self.verb_tagger = verb_tagger
        self.processor_tokenizer: Any = None
        self.card: Any = None  # a `videoglamm.model_card.CardInfo`, set by from_pretrained, written by save_pretrained
        self.declare_trainable()

    # -- trainability ------------------------------------------------------------------------------
    def trainable_modules(self) -> dict[str, nn.Module]:
        """The modules that train; everything else (SAM2, RoBERTa) is frozen."""
        out: dict[str, nn.Module] = {"prompt_projection": self.prompt_projection}
        if self.config.adapter.enabled:
            out["adapters"] = self.adapters
        if self.motion_projection is not None and self.config.prompt.train_motion_projection:
            out["motion_projection"] = self.motion_projection
        if self.conditional_memory_encoder is not None:
            out["conditional_memory_encoder"] = self.conditional_memory_encoder
        return out

    def declare_trainable(self) -> None:
        """Freeze everything but `trainable_modules` (re-run after loading weights with assign=True)."""
        self.requires_grad_(False)
        for module in self.trainable_modules().values():
            module.requires_grad_(True)

    @property
    def device(self) -> torch.device:
        return self.prompt_projection.layers[0].weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.prompt_projection.layers[0].weight.dtype

    @property
    def tokenizer(self) -> Any:
        """The caption tokenizer named by `config.text.tokenizer`, loaded on first use."""
        if self.processor_tokenizer is None:
            from videoglamm.samwise.tokenizer import load_tokenizer

            self.processor_tokenizer = load_tokenizer(self.config.text.tokenizer)
        return self.processor_tokenizer

    # -- clip encoding -----------------------------------------------------------------------------
    def encode_clip(self, pixel_values: Tensor, text: TextBatch, num_frames: int) -> tuple[FrameFeatures, Tensor]:
        """Early fusion of B clips with their captions, then SAM2 features and prompt tokens.

        Args:
            pixel_values: (B*T, 3, S, S) padded SAM2 inputs, batch-major.
            text: B tokenized captions.
            num_frames: T.

        Returns:
            (`FrameFeatures` of the B*T frames, prompt tokens (B, n, D) with n = 1, or 2 with motion).
        """
        a = self.config.adapter
        fused = early_fusion(self.sam2.model, self.text_encoder, self.adapters, a.fusion_stages, a.text_layers,
                             pixel_values, text.input_ids, text.padding, num_frames, use_adapters=a.enabled)
        feats = self.sam2.features_from_backbone(fused.backbone)
        tokens = [contextual_prompt(self.prompt_projection, fused.text_hidden)]
        if self.motion_projection is not None:
            if self.verb_tagger is None:
                from videoglamm.samwise.prompts import spacy_verb_tagger

                self.verb_tagger = spacy_verb_tagger()
            verbs = verb_token_mask(text.captions, text.offsets, self.verb_tagger)
            tokens.append(motion_prompt(self.motion_projection, fused.text_hidden, verbs))
        return feats, torch.stack(tokens, dim=1)

    # -- per-frame decoding ------------------------------------------------------------------------
    def new_state(self, num_objects: int, valid_size: tuple[int, int] | None = None) -> TrackingState:
        """A fresh decoding state for `num_objects` objects (memory empty, no switch yet).

        Args:
            num_objects: B.
            valid_size: (h', w') resized region of the padded frames; training crops the CME's masks to it.
        """
        refresh_meta_rope_caches(self.sam2.model)
        return TrackingState(MemoryBank(self.sam2.model), torch.zeros(num_objects, dtype=torch.long),
                             None if valid_size is None else (int(valid_size[0]), int(valid_size[1])))

    def decode_frame(self, feats: FrameFeatures, tokens: Tensor, frame_idx: int, state: TrackingState) -> FrameDecoding:
        """Decode one frame of B objects with memory, run the CME when due, store the frame's memory.

        Args:
            feats: `FrameFeatures` of this frame, one row per object.
            tokens: (B, n, D) prompt tokens.
            frame_idx: frame index (relative within a training clip, absolute in a video).
            state: updated in place.

        Returns:
            `FrameDecoding`.
        """
        sam = self.sam2.model
        inference = not self.training
        suppress = inference and self.config.inference.suppress_absent
        pix = condition_on_memory(sam, frame_idx, feats, state.memory)
        out = decode_heads(sam, pix, feats.high_res, tokens, suppress_absent=suppress)
        memory_logits = out.high_res
        cme, window = self.conditional_memory_encoder, self.config.cme.decision_window
        eligible = (frame_idx - state.last_switch >= window - 1) & torch.tensor(frame_idx > window)
        if cme is not None and bool(eligible.any()):
            # The memoryless branch: this frame alone (+ no_mem_embed), the contextual prompt only.
            free = decode_heads(sam, feats.image_embed, feats.high_res, tokens[:, :1], suppress_absent=suppress)
            logits = cme(out.obj_ptr, free.early_ptr)
            if inference:
                switch = (logits.argmax(-1) == 1) & eligible.to(logits.device)
                memory_logits = apply_switch(out.high_res, free.high_res, switch, self.config.cme.switch_scale)
                state.last_switch[switch.cpu()] = frame_idx
            else:
                c = self.config.cme
                h, w = state.valid_size if state.valid_size is not None else out.high_res.shape[-2:]
                # Official labels compare the masks of the resized frame, never the zero padding.
                labels = switch_pseudo_labels(out.high_res[:, 0, :h, :w], free.high_res[:, 0, :h, :w],
                                              free.object_scores[:, 0], c.min_area, c.overlap_threshold)
                state.cme_logits.append(logits[eligible.to(logits.device)])
                state.cme_labels.append(labels[eligible.to(labels.device)])
        entry = encode_memory(sam, feats, memory_logits, out.object_scores)
        entry["obj_ptr"] = out.obj_ptr
        state.memory.add(frame_idx, entry, is_cond=False)
        state.memory.trim(next_frame_idx=frame_idx + 1)
        return FrameDecoding(out.low_res, out.object_scores[:, 0])

    def decode_clip(self, feats: FrameFeatures, tokens: Tensor, num_frames: int, first_frame: int,
                    state: TrackingState) -> tuple[Tensor, Tensor]:
        """Decode the T frames of B clips in order.

        Returns:
            ((B, T, s, s) low-res logits, (B, T) object-score logits).
        """
        b = tokens.shape[0]
        logits, scores = [], []
        for t in range(num_frames):
            rows = torch.arange(b, device=feats.image_embed.device) * num_frames + t
            dec = self.decode_frame(select_frames(feats, rows), tokens, first_frame + t, state)
            logits.append(dec.low_res[:, 0])
            scores.append(dec.object_scores)
        return torch.stack(logits, 1), torch.stack(scores, 1)

    # -- training ------------------------------------------------------------------------------------
    def forward(self, pixel_values: Tensor, text: TextBatch, valid_size: tuple[int, int],
                target_masks: Tensor | None = None) -> SAMWISEOutput:
        """Training forward over B clips of T frames (memory reset per clip, relative frame indices).

        Args:
            pixel_values: (B, T, 3, S, S) padded SAM2 inputs.
            text: B tokenized captions.
            valid_size: (h', w') resized region inside the padded inputs.
            target_masks: (B, T, H, W) {0, 1} masks at the original size, or None for logits only.

        Returns:
            `SAMWISEOutput`.

        Raises:
            ShapeMismatchError: inputs disagree in B or T.
        """
        if pixel_values.ndim != 5 or pixel_values.shape[0] != text.input_ids.shape[0]:
            raise ShapeMismatchError(f"pixel_values must be (B, T, 3, S, S) for B={text.input_ids.shape[0]} captions; "
                                     f"got {tuple(pixel_values.shape)}")
        b, t = pixel_values.shape[:2]
        if target_masks is not None and tuple(target_masks.shape[:2]) != (b, t):
            raise ShapeMismatchError(f"target_masks {tuple(target_masks.shape)} must be (B={b}, T={t}, H, W)")
        text = text.to(pixel_values.device)
        feats, tokens = self.encode_clip(pixel_values.flatten(0, 1), text, t)
        state = self.new_state(b, valid_size)
        low_res, scores = self.decode_clip(feats, tokens, t, 0, state)
        size = tuple(target_masks.shape[-2:]) if target_masks is not None else tuple(valid_size)
        logits = postprocess_logits(low_res, self.sam2.image_size, valid_size, size)
        cme_logits = torch.cat(state.cme_logits) if state.cme_logits else None
        cme_labels = torch.cat(state.cme_labels) if state.cme_labels else None
        if target_masks is None:
            return SAMWISEOutput(None, None, None, None, logits, scores, cme_logits, cme_labels)
        loss_cfg = self.config.loss
        targets = target_masks.to(logits.dtype)
        focal = sigmoid_focal_loss(logits, targets, loss_cfg.focal_alpha, loss_cfg.focal_gamma)
        dice = dice_loss(logits, targets)
        cme = cme_loss(cme_logits, cme_labels, loss_cfg.cme_class_weights)
        loss = loss_cfg.focal_weight * focal + loss_cfg.dice_weight * dice + loss_cfg.cme_weight * cme
        if loss_cfg.object_score_weight > 0:
            present = (targets.flatten(2).amax(-1) > 0).to(scores.dtype)  # (B, T)
            loss = loss + loss_cfg.object_score_weight * nn.functional.binary_cross_entropy_with_logits(scores, present)
        return SAMWISEOutput(loss, focal, dice, cme, logits, scores, cme_logits, cme_labels)

    # -- inference and persistence (implemented in their own modules) ----------------------------------
    def predict(self, video: Any, prompts: list[str], **options: Any) -> list[Any]:
        """Segment each prompt in a video, streaming over clips. See `videoglamm.samwise.streaming.predict`."""
        from videoglamm.samwise.streaming import predict

        return predict(self, video, prompts, **options)

    def predict_stream(self, video: Any, prompts: list[str], **options: Any) -> Any:
        """Like `predict`, frame by frame. See `videoglamm.samwise.streaming.predict_stream`."""
        from videoglamm.samwise.streaming import predict_stream

        return predict_stream(self, video, prompts, **options)

    def init_video_session(self, video: Any = None, **options: Any) -> Any:
        """Open a `videoglamm.samwise.session.SAMWISESession` on `video` (None: a live source).

        Args:
            **options: `clip_length`, `hsa`.
        """
        from videoglamm.samwise.session import SAMWISESession

        return SAMWISESession(self, video, **options)

    def propagate_in_video_iterator(self, session: Any, max_frame_num_to_track: int | None = None,
                                    show_progress_bar: bool = False) -> Any:
        """Per-frame object ids, masks (N, H, W) bool and scores (`SAMWISESession.propagate`)."""
        return session.propagate(max_frame_num_to_track, show_progress_bar)

    def save_pretrained(self, path: str | os.PathLike, **card: Any) -> None:
        """Write config.json, model.safetensors, the tokenizer and a README.md model card to `path` atomically.

        Args:
            card: `eval_results` (list of `videoglamm.model_card.EvalEntry`) and `license` for the card.
        """
        from videoglamm.samwise.persistence import save_pretrained

        save_pretrained(self, path, **card)

    def push_to_hub(self, repo_id: str, **options: Any) -> Any:
        """Upload `save_pretrained`'s folder (model card included) to `repo_id`; see `videoglamm.hub.push_to_hub`."""
        from videoglamm.hub import push_to_hub

        return push_to_hub(self, repo_id, **options)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> "SAMWISE":
        """Load a SAMWISE folder, a hub id, an official checkpoint (`.pth`), or a preset (random weights, warned).

        Args:
            name_or_path: a folder written by `save_pretrained`; a hub repo id holding one (or one `.pth`); an
                official SAMWISE `.pth` (converted strictly once, then cached); or a preset name.
            kwargs: `device`, `dtype`; hub lookup: `cache_dir`, `revision`, `local_files_only`, `token`
                (HF_HUB_OFFLINE=1 is honoured); official checkpoints only: `config` (target config or preset,
                default "samwise-base"), `conversion_cache` (default $VIDEOGLAMM_CACHE or
                ~/.cache/videoglamm/converted).

        Raises:
            CheckpointError: missing files or hub entries, another model's config, missing/unexpected keys.
        """
        from videoglamm.samwise.persistence import load_pretrained

        return load_pretrained(cls, name_or_path, **kwargs)
