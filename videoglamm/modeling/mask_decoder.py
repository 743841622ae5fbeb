"""The SAM2 wrapper: the only module of the library that touches `sam2` internals.

`build_mask_decoder(cfg)` builds a real `sam2.modeling.sam2_base.SAM2Base` from the packaged Hydra
config and wraps it in `SAM2MaskDecoder`, which offers the three ways VideoGLaMM and SAMWISE use SAM2:

* `encode_frames` -> `FrameFeatures`: the image path of SAM2 (Hiera + FPN, the decoder's high-res
  projections, `no_mem_embed` added to the lowest level as SAM2's image predictor does).
* `decode`: frame-wise decoding without memory (training, frame-wise inference). Every object is
  prompted by one sparse token, its SEG embedding; `multimask_output=False`.
* `track`: streaming video tracking with SAM2 memory, all objects in one batch (see `sam2_tracking`).

Mask semantics everywhere: logits > 0 are foreground. Object-score logits <= 0 mean SAM2 predicts the
object is absent; `decode` reports them untouched, `track` additionally gets SAM2's own suppression
(mask logits set to -1024 on such objects, as in `SAM2Base._forward_sam_heads`). Callers decide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sam2  # noqa: F401  (initialises Hydra's global state for sam2 when nobody else has)
import torch
import torch.nn.functional as F
from sam2.modeling.sam2_base import SAM2Base
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from videoglamm.config import SAM2Config
from videoglamm.errors import ConfigError, ShapeMismatchError
from videoglamm.modeling.sam2_tracking import SAM2VideoTracker, TrackStep

# What `sam2.build_sam.build_sam2` adds by default (`apply_postprocessing=True`), which the official
# VideoGLaMM code uses, plus the one SAM2Base option `build_sam2_video_predictor` adds on top: the
# memory of a prompted frame is encoded from the binarised mask. (`fill_hole_area` is a predictor-only
# output post-process needing sam2's optional CUDA extension; it is not applied here.)
OFFICIAL_BUILD_OVERRIDES: tuple[str, ...] = (
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
    "++model.binarize_mask_from_pts_for_mem_enc=true",
)


class _HostLinspace(TorchFunctionMode):
    """Keep `torch.linspace` on the CPU while a model is built under `torch.device("meta")`.

    Hiera turns a `linspace` into Python floats with `.item()` to get its drop-path rates, which a meta
    tensor cannot do. Nothing else is affected: parameters still land on the ambient device.
    """

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        if func is torch.linspace and kwargs.get("device") is None:
            kwargs["device"] = "cpu"
        return func(*args, **kwargs)


def _compose_sam2_config(variant: str, overrides: Sequence[str]) -> Any:
    """Compose a config packaged with sam2 without disturbing whoever owns Hydra's global state.

    `import sam2` initialises Hydra for sam2's config module only if nothing else did; an application
    using Hydra itself may own that state. So compose under a temporary sam2 initialisation and then
    restore exactly the state that was there before.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("sam2", version_base="1.2"):
            return compose(config_name=variant, overrides=list(overrides))
    finally:
        restore_gh_from_backup(backup)


def build_sam2_model(cfg: SAM2Config) -> SAM2Base:
    """Build the `SAM2Base` described by `cfg` through sam2's own Hydra configs (random weights).

    Works under `with torch.device("meta")` (no memory allocated), e.g. to load a checkpoint later with
    `to_empty` + `load_state_dict`. The module is returned in eval mode, as `build_sam2` returns it.

    Args:
        cfg: `SAM2Config`; `variant` is a config path inside the sam2 package
            (e.g. "configs/sam2/sam2_hiera_l.yaml"), `overrides` are applied last.

    Returns:
        The `SAM2Base`, on the ambient default device.

    Raises:
        ConfigError: the variant is not packaged with sam2, or an override does not apply.
    """
    from hydra.errors import HydraException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    overrides = [f"++model.image_size={cfg.image_size}", *OFFICIAL_BUILD_OVERRIDES]
    if not cfg.multimask_fallback:
        overrides.append("++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=false")
    overrides += cfg.overrides
    try:
        conf = _compose_sam2_config(cfg.variant, overrides)
    except HydraException as err:
        raise ConfigError(
            f"sam2 could not compose {cfg.variant!r} with overrides {overrides}: {err}. Use a config path "
            "packaged with sam2 (e.g. 'configs/sam2/sam2_hiera_l.yaml') and '++model.<field>=<value>' overrides."
        ) from err
    OmegaConf.resolve(conf)
    target = conf.model.get("_target_")
    if target != "sam2.modeling.sam2_base.SAM2Base":
        raise ConfigError(f"sam2.variant {cfg.variant!r} builds {target!r}; the wrapper needs a SAM2Base config")
    with _HostLinspace():
        model = instantiate(conf.model, _recursive_=True)
    return model.eval()


@dataclass
class FrameFeatures:
    """SAM2 image features of N frames (all at the SAM2 input size S; h = w = S / 16).

    Attributes:
        image_embed: (N, C, h, w) lowest-resolution FPN level, plus `no_mem_embed` when the config
            says `directly_add_no_mem_embed` (what SAM2's image path decodes from).
        high_res: two maps (N, C/8, 4h, 4w) and (N, C/4, 2h, 2w), already through the decoder's
            `conv_s0` / `conv_s1`; None when the config has no high-res features.
        vision_feats: per level (HW, N, C_level) flattened maps, without `no_mem_embed` (the memory path).
        vision_pos_embeds: per level (HW, N, C) positional encodings.
        feat_sizes: per level (H, W).
    """

    image_embed: Tensor
    high_res: list[Tensor] | None
    vision_feats: list[Tensor]
    vision_pos_embeds: list[Tensor]
    feat_sizes: list[tuple[int, int]]

    @property
    def num_frames(self) -> int:
        return self.image_embed.shape[0]

    def expand_frame(self, index: int, batch: int) -> "FrameFeatures":
        """Features of frame `index` repeated (as views) `batch` times: one row per tracked object."""
        sl = slice(index, index + 1)
        return FrameFeatures(
            image_embed=self.image_embed[sl].expand(batch, -1, -1, -1),
            high_res=None if self.high_res is None else [x[sl].expand(batch, -1, -1, -1) for x in self.high_res],
            vision_feats=[x[:, sl].expand(-1, batch, -1) for x in self.vision_feats],
            vision_pos_embeds=[x[:, sl].expand(-1, batch, -1) for x in self.vision_pos_embeds],
            feat_sizes=list(self.feat_sizes),
        )


@dataclass
class DecodeOutput:
    """Frame-wise decoding of K objects on N frames.

    Attributes:
        mask_logits: (N, K, 4h, 4w) low-resolution mask logits (256 x 256 at S = 1024); > 0 = mask.
        iou_predictions: (N, K) predicted IoU of each mask.
        object_score_logits: (N, K) object-presence logits; <= 0 = SAM2 thinks the object is absent.
    """

    mask_logits: Tensor
    iou_predictions: Tensor
    object_score_logits: Tensor


class SAM2MaskDecoder(nn.Module):
    """A SAM2 model (`self.model`, a `SAM2Base`) prompted by SEG embeddings.

    Trainability is declared once here: everything is frozen, except `model.sam_mask_decoder` when
    `train_mask_decoder`. State-dict keys are `model.<key of sam2_hiera_*.pt["model"]>`.

    Train/eval mode follows the usual `nn.Module` propagation, as in the official code: in eval mode
    SAM2's single-mask output may fall back to the best multimask output when unstable
    (`dynamic_multimask_via_stability`, unless `SAM2Config.multimask_fallback` is off); in train mode
    it does not.

    Args:
        model: the `SAM2Base` to wrap (see `build_sam2_model`).
        train_mask_decoder: whether `model.sam_mask_decoder` is trainable.
    """

    def __init__(self, model: SAM2Base, train_mask_decoder: bool = False, train_all: bool = False) -> None:
        super().__init__()
        self.model = model
        self.train_mask_decoder = train_mask_decoder
        self.train_all = train_all
        self.declare_trainable()

    def declare_trainable(self) -> None:
        """Freeze SAM2, except its mask decoder when `train_mask_decoder`, or nothing when `train_all`
        (re-run after loading weights)."""
        self.model.requires_grad_(self.train_all)
        if self.train_mask_decoder:
            self.model.sam_mask_decoder.requires_grad_(True)

    @property
    def hidden_dim(self) -> int:
        """D: the width of a prompt token (256 for the released SAM2 models)."""
        return self.model.hidden_dim

    @property
    def image_size(self) -> int:
        """S: the square input size SAM2 expects."""
        return self.model.image_size

    @property
    def low_res_size(self) -> int:
        """Side of the low-resolution mask logits (S / 4)."""
        return self.model.sam_image_embedding_size * 4

    # -- image path -----------------------------------------------------------------------------
    def encode_frames(self, pixel_values: Tensor) -> FrameFeatures:
        """Run SAM2's image encoder on N frames.

        The image encoder runs without autograd while it is frozen; the decoder's `conv_s0`/`conv_s1`
        projections (part of `sam_mask_decoder`) run with autograd so they train with the decoder.

        Args:
            pixel_values: (N, 3, S, S) frames normalised for SAM2 (ImageNet mean/std), S = `image_size`.

        Returns:
            `FrameFeatures` of the N frames.

        Raises:
            ShapeMismatchError: the frames are not (N, 3, S, S).
        """
        s = self.image_size
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (3, s, s):
            raise ShapeMismatchError(
                f"SAM2 frames must be (N, 3, {s}, {s}); got {tuple(pixel_values.shape)}. "
                f"Resize frames to the SAM2 input size {s} first."
            )
        model = self.model
        encoder_trainable = any(p.requires_grad for p in model.image_encoder.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and encoder_trainable):
            backbone_out = model.image_encoder(pixel_values)
        return self.features_from_backbone(backbone_out)

    def features_from_backbone(self, backbone_out: dict[str, Any]) -> FrameFeatures:
        """`FrameFeatures` from an image-encoder output computed elsewhere (e.g. SAMWISE's fused trunk).

        Args:
            backbone_out: {"backbone_fpn": per level (N, C, h_l, w_l), "vision_pos_enc": the same shapes},
                as `SAM2Base.image_encoder` returns it.

        Returns:
            `FrameFeatures` of the N frames.
        """
        model = self.model
        fpn = list(backbone_out["backbone_fpn"])
        if model.use_high_res_features_in_sam:
            # Same projections as SAM2Base.forward_image, applied outside the no-grad region above.
            fpn[0] = model.sam_mask_decoder.conv_s0(fpn[0])
            fpn[1] = model.sam_mask_decoder.conv_s1(fpn[1])
        _, vision_feats, vision_pos, feat_sizes = model._prepare_backbone_features(
            {"backbone_fpn": fpn, "vision_pos_enc": list(backbone_out["vision_pos_enc"])}
        )
        n = fpn[-1].shape[0]
        lowest = vision_feats[-1]
        if model.directly_add_no_mem_embed:
            lowest = lowest + model.no_mem_embed
        image_embed = lowest.permute(1, 2, 0).reshape(n, model.hidden_dim, *feat_sizes[-1])
        high_res = None
        if model.use_high_res_features_in_sam:
            high_res = [x.permute(1, 2, 0).reshape(n, -1, *size) for x, size in zip(vision_feats[:-1], feat_sizes[:-1])]
        return FrameFeatures(image_embed, high_res, vision_feats, vision_pos, feat_sizes)

    # -- frame-wise decoding (no memory) -------------------------------------------------------------
    def decode(self, features: FrameFeatures, prompts: Tensor) -> DecodeOutput:
        """Decode K objects on each of N frames, each object prompted by one sparse token.

        This is the official training / frame-wise path: the sparse prompt is the SEG embedding alone
        (no padding point), the dense prompt is `no_mask_embed`, `multimask_output=False`, high-res
        features on. All N * K (frame, object) pairs go through the mask decoder in one batch.

        Args:
            features: `FrameFeatures` of N frames.
            prompts: (N, K, D) one prompt token per object and frame, D = `hidden_dim`.

        Returns:
            `DecodeOutput` with (N, K, 4h, 4w) low-res logits, (N, K) IoU and object-score logits.

        Raises:
            ShapeMismatchError: `prompts` is not (N, K, D) for the N frames of `features`.
        """
        n = features.num_frames
        if prompts.ndim != 3 or prompts.shape[0] != n or prompts.shape[2] != self.hidden_dim:
            raise ShapeMismatchError(
                f"prompts must be (N={n}, K, D={self.hidden_dim}) for {n} frames; got {tuple(prompts.shape)}"
            )
        k = prompts.shape[1]
        model = self.model
        # The prompt encoder with no points, boxes or masks yields an empty sparse set and the
        # `no_mask_embed` dense prompt; the SEG embeddings are the whole sparse prompt.
        sparse, dense = model.sam_prompt_encoder(points=None, boxes=None, masks=None)
        # The empty sparse set is created in the default dtype; follow the module's (dense) dtype.
        tokens = prompts.reshape(n * k, 1, -1).to(dense.dtype)
        sparse = torch.cat([sparse.to(dense.dtype).expand(n * k, -1, -1), tokens], dim=1)
        dense = dense.expand(n * k, -1, -1, -1)

        def per_object(x: Tensor) -> Tensor:  # (N, ...) -> (N * K, ...), frame-major like `prompts`
            return x.repeat_interleave(k, dim=0)

        high_res = None if features.high_res is None else [per_object(x) for x in features.high_res]
        masks, ious, _, object_scores = model.sam_mask_decoder(
            image_embeddings=per_object(features.image_embed),
            image_pe=model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
            repeat_image=False,  # already one image row per (frame, object), see `per_object`
            high_res_features=high_res,
        )
        h4, w4 = masks.shape[-2:]
        return DecodeOutput(
            mask_logits=masks.reshape(n, k, h4, w4),
            iou_predictions=ious.reshape(n, k),
            object_score_logits=object_scores.reshape(n, k),
        )

    def forward(self, features: FrameFeatures, prompts: Tensor) -> DecodeOutput:
        """`decode` (so wrappers that call `forward`, e.g. DDP, see the training path)."""
        return self.decode(features, prompts)

    @staticmethod
    def upsample(logits: Tensor, size: tuple[int, int]) -> Tensor:
        """Bilinearly resize mask logits (..., h, w) to `size` = (H, W) (threshold afterwards, at 0).

        Args:
            logits: (..., h, w) mask logits with any leading dims.
            size: the target (H, W), usually the original frame size.

        Returns:
            (..., H, W) logits.
        """
        lead = logits.shape[:-2]
        flat = logits.reshape(-1, 1, *logits.shape[-2:])
        out = F.interpolate(flat.float(), size=tuple(size), mode="bilinear", align_corners=False)
        return out.reshape(*lead, *out.shape[-2:])

    # -- video tracking with memory ----------------------------------------------------------------
    def track(
        self,
        frames: Iterable[Tensor],
        prompts: Tensor | None,
        prompt_frames: Sequence[int] = (0,),
        *,
        multimask_on_prompt_frames: bool = True,
        multimask_on_tracked_frames: bool = True,
        prompts_per_frame: Callable[[int], Tensor] | None = None,
        num_frames: int | None = None,
        memory_dtype: torch.dtype | None = torch.bfloat16,
    ) -> Iterator[TrackStep]:
        """Track K objects through a video with SAM2 memory, streaming and with bounded memory.

        See `SAM2VideoTracker` for the exact semantics (prompt injection, frames before the first
        prompt frame, what is kept in memory).

        Args:
            frames: iterable of (3, S, S) SAM2-normalised frames in video order, consumed lazily.
            prompts: (K, D) one SEG embedding per object, given to every prompt frame; may be None when
                `prompts_per_frame` supplies them.
            prompt_frames: frame indices prompted as SAM2 initial conditioning frames (official: (0,)).
            multimask_on_prompt_frames: follow SAM2's rule on prompt frames (3 masks, best by predicted
                IoU, for the released configs); False forces single-mask output.
            multimask_on_tracked_frames: the same on the other frames (SAMWISE uses False).
            prompts_per_frame: optional `frame_index -> (K, D)` tokens appended on every tracked frame
                that is not a prompt frame (SAMWISE-style per-frame text prompts).
            num_frames: the video length if known (SAM2 uses it to cap object pointers on short videos).
            memory_dtype: dtype of the stored spatial memories (official predictor: bfloat16); None: exact.

        Returns:
            An iterator of `TrackStep`, one per frame from the first prompt frame on.

        Raises:
            InputError: bad `prompt_frames`, no prompts at all, or (at the end of the iteration) a
                prompt frame beyond the video.
            ShapeMismatchError: prompts not (K, D) or a frame not (3, S, S).
        """
        tracker = SAM2VideoTracker(
            self,
            prompt_frames=prompt_frames,
            multimask_on_prompt_frames=multimask_on_prompt_frames,
            multimask_on_tracked_frames=multimask_on_tracked_frames,
            num_frames=num_frames,
            memory_dtype=memory_dtype,
        )
        return tracker.track(frames, prompts, prompts_per_frame=prompts_per_frame)


def build_mask_decoder(cfg: SAM2Config) -> SAM2MaskDecoder:
    """Build the SAM2 wrapper from its config (random weights; load a checkpoint afterwards).

    Args:
        cfg: the `sam2` section of `VideoGLaMMConfig`.

    Returns:
        `SAM2MaskDecoder` with the declared trainable set, in eval mode (like `build_sam2`).

    Raises:
        ConfigError: the SAM2 config cannot be composed or is not a `SAM2Base` config.
    """
    return SAM2MaskDecoder(build_sam2_model(cfg), train_mask_decoder=cfg.train_mask_decoder, train_all=cfg.train_all).eval()
