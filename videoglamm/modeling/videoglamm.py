"""VideoGLaMM: dual vision encoder -> V->L adapters -> Phi-3 (+LoRA) -> [SEG] -> L->V projector -> SAM2.

The model composes parts that the builders make from one `VideoGLaMMConfig`; tests pass tiny parts in.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from videoglamm.config import LoRAConfig, VideoGLaMMConfig
from videoglamm.errors import ConfigError, InputError, ShapeMismatchError, TokenCountError
from videoglamm.modeling.adapters import VisionAdapter
from videoglamm.modeling.llm import build_llm, causal_lm, has_lora, set_llm_trainable, unwrap_merged, wrap_with_lora
from videoglamm.modeling.losses import mask_bce, mask_dice
from videoglamm.modeling.outputs import VideoGLaMMOutput
from videoglamm.modeling.seg_projector import SegProjector, seg_hidden_states
from videoglamm.processing.tokens import IGNORE_INDEX

if TYPE_CHECKING:
    from transformers import Phi3ForCausalLM

    from videoglamm.modeling.outputs import GroundingResult
    from videoglamm.modeling.predict import StreamingPrediction
    from videoglamm.modeling.session import SessionFrameOutput, VideoSession
    from videoglamm.processing.video_io import VideoLike


class VideoGLaMM(nn.Module):
    """The VideoGLaMM model.

    Args:
        config: the full configuration.
        image_tower, video_tower, llm, mask_decoder: optional prebuilt parts (built from `config` if None).

    Trainable after construction: both adapters (unless `adapter.trainable` is False), the SEG projector,
    `embed_tokens`, `lm_head`, and the SAM2 mask decoder when `sam2.train_mask_decoder`. LoRA adds its
    tensors through `apply_lora`.
    """

    def __init__(
        self,
        config: VideoGLaMMConfig,
        *,
        image_tower: nn.Module | None = None,
        video_tower: nn.Module | None = None,
        llm: nn.Module | None = None,
        mask_decoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        from videoglamm.modeling.image_tower import build_image_tower
        from videoglamm.modeling.mask_decoder import build_mask_decoder
        from videoglamm.modeling.video_tower import build_video_tower

        self.config = config
        hidden = config.llm.hidden_size
        self.image_tower = image_tower if image_tower is not None else build_image_tower(config.image_tower)
        self.video_tower = video_tower if video_tower is not None else build_video_tower(config.video_tower)
        self.image_adapter = VisionAdapter(config.image_tower.width, hidden, config.adapter.image_pool)
        self.video_adapter = VisionAdapter(config.video_tower.width, hidden, config.adapter.video_pool)
        self.llm = llm if llm is not None else build_llm(config.llm)
        self.seg_projector = SegProjector(hidden, config.seg_projector.out_dim)
        self.mask_decoder = mask_decoder if mask_decoder is not None else build_mask_decoder(config.sam2)
        if self.mask_decoder.hidden_dim != config.seg_projector.out_dim:
            raise ConfigError(
                f"seg_projector.out_dim ({config.seg_projector.out_dim}) must equal the SAM2 prompt width "
                f"({self.mask_decoder.hidden_dim})"
            )
        self.processor = None  # set by from_pretrained; predict() falls back to the preset's processor
        self.card = None  # a `videoglamm.model_card.CardInfo`, set by from_pretrained, written by save_pretrained
        self._declare_trainable()

    # -- trainable set -----------------------------------------------------------------------------
    def _declare_trainable(self) -> None:
        for tower in (self.image_tower, self.video_tower):
            tower.requires_grad_(False)
        for adapter in (self.image_adapter, self.video_adapter):
            adapter.requires_grad_(self.config.adapter.trainable)
        self.seg_projector.requires_grad_(True)
        set_llm_trainable(self.llm)
        # The mask decoder declares its own frozen/trainable split from the SAM2 config.

    def trainable_parameter_names(self) -> list[str]:
        return [name for name, p in self.named_parameters() if p.requires_grad]

    def apply_lora(self, cfg: LoRAConfig | None = None) -> None:
        """Wrap the LLM with LoRA (on `cfg.target_modules`, default from the config) for fine-tuning."""
        self.llm = wrap_with_lora(self.llm, cfg or self.config.lora)
        self.llm.train(self.training)  # new LoRA dropout layers must follow the model's mode

    def merge_lora(self) -> None:
        """Fold LoRA into the LLM weights; the model then has the preset's exact parameter names."""
        self.llm = unwrap_merged(self.llm)

    @property
    def has_lora(self) -> bool:
        return has_lora(self.llm)

    @property
    def language_model(self) -> "Phi3ForCausalLM":
        return causal_lm(self.llm)

    @property
    def device(self) -> torch.device:
        return self.seg_projector.fc1.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.seg_projector.fc1.weight.dtype

    # -- vision ------------------------------------------------------------------------------------
    def encode_video(self, pixel_values_image: torch.Tensor, pixel_values_video: torch.Tensor) -> torch.Tensor:
        """Visual tokens for the LLM: every frame's CLIP tokens, then every frame's InternVideo2 tokens.

        Args:
            pixel_values_image: (B, T, 3, Si, Si) CLIP views.
            pixel_values_video: (B, T, 3, Sv, Sv) InternVideo2 views (T a multiple of the segment length).

        Returns:
            (B, T * (image_pool² + video_pool²), hidden).
        """
        b, t = pixel_values_image.shape[:2]
        if pixel_values_video.shape[:2] != (b, t):
            raise ShapeMismatchError(
                f"image views {tuple(pixel_values_image.shape[:2])} and video views "
                f"{tuple(pixel_values_video.shape[:2])} must have the same (B, T)"
            )
        with torch.no_grad():
            image_feats = self.image_tower(pixel_values_image.flatten(0, 1))  # (B*T, gi², Ci)
            video_feats = self.video_tower(pixel_values_video)  # (B, T, gv², Cv)
        image_tokens = self.image_adapter(image_feats.to(self.dtype)).reshape(b, -1, self.config.llm.hidden_size)
        video_tokens = self.video_adapter(video_feats.flatten(0, 1).to(self.dtype))
        video_tokens = video_tokens.reshape(b, -1, self.config.llm.hidden_size)
        return torch.cat([image_tokens, video_tokens], dim=1)

    def embed_inputs(self, input_ids: torch.Tensor, visual_tokens: torch.Tensor) -> torch.Tensor:
        """Token embeddings with the video placeholders replaced by `visual_tokens`, by id.

        Raises:
            TokenCountError: when a sample's placeholder count differs from its number of visual tokens.
        """
        placeholder = input_ids == self.config.tokens.video_token_id
        counts = placeholder.sum(1)
        expected = visual_tokens.shape[1]
        bad = [(i, int(c)) for i, c in enumerate(counts.tolist()) if c != expected]
        if bad:
            raise TokenCountError(
                f"video placeholder count per sample {bad} (sample, count) differs from the {expected} visual "
                "tokens of one video; build inputs with VideoGLaMMProcessor for this config"
            )
        embeds = self.language_model.get_input_embeddings()(input_ids.masked_fill(placeholder, 0))
        return embeds.masked_scatter(placeholder.unsqueeze(-1), visual_tokens.to(embeds.dtype))

    # -- training forward --------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        pixel_values_image: torch.Tensor,
        pixel_values_video: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        sam_pixel_values: torch.Tensor | None = None,
        masks: list[torch.Tensor] | None = None,
        frame_indices: torch.Tensor | None = None,
        original_sizes: torch.Tensor | None = None,
        mask_valid: list[torch.Tensor] | None = None,
        seg_phrase_index: torch.Tensor | None = None,
    ) -> VideoGLaMMOutput:
        """Teacher-forced forward with losses.

        Args:
            input_ids, attention_mask, labels: (B, L) from `VideoGLaMMProcessor`.
            pixel_values_image, pixel_values_video: encoder views (B, T, 3, S, S).
            sam_pixel_values: (B, Ts, 3, S, S) SAM2 views of the supervised frames.
            masks: per sample float (num_seg, Ts, H, W); the k-th mask supervises the k-th `[SEG]`.
            frame_indices, original_sizes: bookkeeping from the processor (not used by the forward).
            mask_valid: per sample bool (num_seg, Ts); (mask, frame) pairs marked False get no mask loss
                (frames without annotation). None: every pair is supervised.
            seg_phrase_index: (B, L) from the processor; required by `seg_projector.hidden_source: phrase`.

        Returns:
            `VideoGLaMMOutput`.

        Raises:
            TokenCountError: placeholder or `[SEG]`/mask count mismatch.
        """
        visual = self.encode_video(pixel_values_image, pixel_values_video)
        embeds = self.embed_inputs(input_ids, visual)
        lm = self.language_model
        hidden = lm.model(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).last_hidden_state
        logits = lm.lm_head(hidden)
        lm_loss = None
        if labels is not None:
            lm_loss = F.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX
            )
        seg_embeddings = self.seg_embeddings(input_ids, hidden, seg_phrase_index)
        pred_masks: list[torch.Tensor] = []
        bce = dice = None
        if masks is not None:
            pred_masks, bce, dice = self._mask_losses(seg_embeddings, sam_pixel_values, masks, mask_valid)
        loss = None
        if lm_loss is not None:
            w = self.config.loss
            loss = w.ce_weight * lm_loss
            if bce is not None:
                loss = loss + w.bce_weight * bce + w.dice_weight * dice
        return VideoGLaMMOutput(
            loss=loss, lm_loss=lm_loss, mask_bce_loss=bce, mask_dice_loss=dice, logits=logits,
            pred_masks=pred_masks, seg_embeddings=seg_embeddings, last_hidden_state=hidden,
        )

    def seg_embeddings(self, input_ids: torch.Tensor, hidden: torch.Tensor,
                       seg_phrase_index: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Projected `[SEG]` prompts per sample, (num_seg_b, D), in reading order (see `seg_hidden_states`)."""
        seg_id = self.config.tokens.seg_token_id
        states = seg_hidden_states(input_ids, hidden, seg_id, self.config.seg_projector.hidden_source,
                                   seg_phrase_index)
        projected = self.seg_projector(states)
        counts = torch.bincount((input_ids == seg_id).nonzero()[:, 0], minlength=input_ids.shape[0]).tolist()
        return list(projected.split(counts))

    def _mask_losses(
        self, seg_embeddings: list[torch.Tensor], sam_pixel_values: torch.Tensor | None, masks: list[torch.Tensor],
        mask_valid: list[torch.Tensor] | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        if len(masks) != len(seg_embeddings):
            raise TokenCountError(f"{len(masks)} mask entries for a batch of {len(seg_embeddings)} samples")
        if mask_valid is not None and len(mask_valid) != len(masks):
            raise ShapeMismatchError(f"{len(mask_valid)} mask_valid entries for {len(masks)} mask entries")
        preds, logits_all, targets_all = [], [], []
        for i, (prompts, target) in enumerate(zip(seg_embeddings, masks)):
            if target.shape[0] != prompts.shape[0]:
                raise TokenCountError(f"sample {i}: {prompts.shape[0]} [SEG] tokens but {target.shape[0]} masks")
            if prompts.shape[0] == 0:
                preds.append(target.new_zeros(target.shape))
                continue
            if sam_pixel_values is None:
                raise ShapeMismatchError("masks are given but sam_pixel_values is missing")
            frames = sam_pixel_values[i]
            if frames.shape[0] != target.shape[1]:
                raise ShapeMismatchError(f"sample {i}: {frames.shape[0]} SAM frames but masks cover {target.shape[1]}")
            pred = self.decode_masks(frames, prompts, tuple(target.shape[-2:]))  # (K, Ts, H, W)
            preds.append(pred)
            keep = slice(None)
            if mask_valid is not None:
                if tuple(mask_valid[i].shape) != tuple(target.shape[:2]):
                    raise ShapeMismatchError(f"sample {i}: mask_valid {tuple(mask_valid[i].shape)} vs masks "
                                             f"(num_seg, Ts) {tuple(target.shape[:2])}")
                keep = mask_valid[i].to(pred.device, torch.bool).flatten()
            logits_all.append(pred.flatten(0, 1)[keep])
            targets_all.append(target.flatten(0, 1).to(pred.dtype)[keep])
        if not logits_all:
            zero = self.seg_projector.fc2.weight.new_zeros(())
            return preds, zero, zero
        logits, targets = torch.cat(logits_all), torch.cat(targets_all)
        if logits.shape[0] == 0:  # every pair masked out: no mask loss, but keep the graph connected
            zero = logits.sum() * 0.0
            return preds, zero, zero
        return preds, mask_bce(logits.float(), targets.float()), mask_dice(logits.float(), targets.float())

    def decode_masks(self, frames: torch.Tensor, prompts: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Frame-wise SAM2 decoding (no memory) of K prompts on T frames.

        Args:
            frames: (T, 3, S, S) SAM2 views.
            prompts: (K, D) projected `[SEG]` embeddings.
            size: output (H, W).

        Returns:
            mask logits (K, T, H, W).
        """
        features = self.mask_decoder.encode_frames(frames)
        per_frame = prompts.unsqueeze(0).expand(frames.shape[0], -1, -1)
        out = self.mask_decoder.decode(features, per_frame.to(frames.dtype))
        logits = self.mask_decoder.upsample(out.mask_logits, size)  # (T, K, H, W)
        return logits.transpose(0, 1)

    def extra_repr(self) -> str:
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return f"preset={self.config.preset!r}, params={total:,}, trainable={trainable:,}"

    # -- inference ---------------------------------------------------------------------------------
    def _processor(self) -> Any:
        if self.processor is None:
            from videoglamm.processing.processor import VideoGLaMMProcessor

            self.processor = VideoGLaMMProcessor.from_preset(self.config.preset)
        return self.processor

    def predict(self, video: "VideoLike | Sequence[VideoLike]", prompt: str | Sequence[str] | Sequence[Sequence[str]],
                **options: Any) -> "GroundingResult | list[GroundingResult] | list[list[GroundingResult]]":
        """Answer `prompt` about `video` with text and one mask track per `[SEG]`.

        Args:
            video: a file path (read with decord), a folder of frame images (name order), a list of image paths
                or PIL images, or uint8 (T, H, W, 3); or a list of such videos, answered in batches
                (`predict_batch`).
            prompt: one prompt, or a list of prompts (the video is then encoded once for all); for a list of
                videos, one list of prompts per video or one flat list asked of every video.
            **options: see `videoglamm.modeling.predict.PredictOptions` (num_frames, frame_sampling,
                frame_indices, max_new_tokens, do_sample, mask_mode, prompt_frames, ...); what is not given
                comes from the model's own defaults, `config.inference`.

        Returns:
            `GroundingResult` (a list of them for a list of prompts; `results[i][j]` for a list of videos).

        Raises:
            InputError: an unknown option or a value out of range, a bad video or prompt.
        """
        from videoglamm.modeling.batched import is_video_list
        from videoglamm.modeling.predict import check_prompts_container

        if is_video_list(video):
            return self.predict_batch(video, prompt, **options)
        if not isinstance(prompt, str):
            if any(isinstance(p, (list, tuple)) for p in check_prompts_container(prompt)):
                raise InputError("nested prompt lists need a list of videos (one prompt list per video)")
        results = self.predict_batch([video], [[prompt] if isinstance(prompt, str) else list(prompt)], **options)[0]
        return results[0] if isinstance(prompt, str) else results

    def predict_batch(self, videos: "Sequence[VideoLike]", prompts: Sequence[str] | Sequence[Sequence[str]],
                      **options: Any) -> "list[list[GroundingResult]]":
        """Several prompts on several videos: visual encoding, generation and SAM2 tracking batched
        (`videoglamm.modeling.batched`); greedy results equal one-at-a-time calls.

        Args:
            videos: videos as `predict` takes them.
            prompts: one list of prompts per video, or one flat list asked of every video.
            **options: as `predict`.

        Returns:
            `results[i][j]`: the answer to prompt j on video i.

        Raises:
            InputError: as `predict`; prompt lists that do not match the videos.
        """
        from videoglamm.modeling.batched import predict_batch
        from videoglamm.modeling.predict import PredictOptions

        opts = PredictOptions.for_model(self.config, **options)
        return predict_batch(self, self._processor(), list(videos), prompts, opts)

    def predict_stream(self, video: "VideoLike", prompt: str, **options: Any) -> "StreamingPrediction":
        """Like `predict`, but masks are computed as the result is iterated:
        `for frame_index, masks, scores in model.predict_stream(...)`, masks (K, H, W) bool."""
        from videoglamm.modeling.predict import PredictOptions, predict_stream

        return predict_stream(self, self._processor(), video, prompt, PredictOptions.for_model(self.config, **options))

    def init_video_session(self, video: "VideoLike | None" = None, **options: Any) -> "VideoSession":
        """Open a session on `video` (a file, a frame folder, PIL images, uint8 (T, H, W, 3)), or on a
        live source when None (push frames with `session.add_frame`). See `videoglamm.modeling.session`.

        Args:
            **options: `PredictOptions` (what is not given comes from `config.inference`).
        """
        from videoglamm.modeling.predict import PredictOptions
        from videoglamm.modeling.session import VideoSession

        return VideoSession(self, self._processor(), video, PredictOptions.for_model(self.config, **options))

    def propagate_in_video_iterator(self, session: "VideoSession", max_frame_num_to_track: int | None = None,
                                    show_progress_bar: bool = False) -> "Iterator[SessionFrameOutput]":
        """Per-frame object ids, masks (N, H, W) bool at the video's size and scores, from the session's
        next frame on (`VideoSession.propagate`)."""
        return session.propagate(max_frame_num_to_track, show_progress_bar)

    # -- persistence -------------------------------------------------------------------------------
    def save_pretrained(self, path: str | os.PathLike, trainable_only: bool = False, **card: Any) -> None:
        """Write config, safetensors weights, tokenizer and a README.md model card to `path` atomically.

        Args:
            card: `eval_results` (list of `videoglamm.model_card.EvalEntry`) and `license` for the card.
        """
        from videoglamm.modeling.persistence import save_pretrained

        save_pretrained(self, path, trainable_only=trainable_only, **card)

    def push_to_hub(self, repo_id: str, **options: Any) -> Any:
        """Upload `save_pretrained`'s folder (model card included) to the hub repo `repo_id`.

        See `videoglamm.hub.push_to_hub` (`private`, `token`, `revision`, `commit_message`, `create_pr`,
        and the `save_pretrained` card options). Raises CheckpointError under HF_HUB_OFFLINE=1.
        """
        from videoglamm.hub import push_to_hub

        return push_to_hub(self, repo_id, **options)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        quantization: str | None = None,
        adapter: str | os.PathLike | None = None,
        progress: bool = True,
        **sources: Any,
    ) -> "VideoGLaMM":
        """Load a saved folder, a hub id, the official release, a shipped model name, or a preset.

        Args:
            name_or_path: a folder written by `save_pretrained`; a hub repo id ("org/name") holding one; the
                official VideoGLaMM release folder or hub repo (detected by its tensor names, converted
                strictly once and cached); "videoglamm-tiny-synthetic"; or a preset (random weights, warned).
            dtype, device: where the model lives.
            quantization: "4bit" (nf4) or "8bit" to load the LLM through bitsandbytes.
            adapter: folder or hub id written with `save_pretrained(trainable_only=True)`, loaded on top.
            progress: show transformers' weight-loading bar.
            sources: hub lookup: `cache_dir`, `revision`, `local_files_only`, `token` (HF_HUB_OFFLINE=1 is
                honoured); official release only: `clip` (CLIP ViT-L/14-336 weights: path or hub id,
                required: the release lacks them), `tokenizer` (when not in the release folder), `config`
                (target config or preset, default "videoglamm-phi3-mini"), `conversion_cache` (default
                $VIDEOGLAMM_CACHE or ~/.cache/videoglamm/converted).

        Raises:
            CheckpointError: missing, truncated or corrupt files or hub entries (pickles are refused, never
                unpickled), another model's config, missing/unexpected keys, wrong shapes.
            ConfigError: an unknown or ill-typed config.json field, an unknown quantization.
            InputError: a device this machine does not have; release-only options for a folder that needs
                no conversion.
        """
        from videoglamm.modeling.persistence import load_pretrained

        return load_pretrained(cls, name_or_path, dtype=dtype, device=device, quantization=quantization,
                               adapter=adapter, progress=progress, **sources)
