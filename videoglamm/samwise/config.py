"""Typed configuration of SAMWISE: one `SAMWISEConfig` with nested, validated sub-configs.

Presets are plain data (`SAMWISE_PRESETS`): "samwise-base" is the released architecture (SAM 2.0
Hiera-B+ at 1024 px, RoBERTa-base, three CMT adapters of width 256 after Hiera stages 2/3/4 and text
layers 4/8/12, HSA patches 8/4/2, clips of 8 frames); "samwise-tiny" has the same structure at toy sizes
with the offline tokenizer shipped in the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from videoglamm.config import _TINY_SAM2_OVERRIDES, IMAGENET_MEAN, IMAGENET_STD, SAM2Config, SectionedConfig, _check

# SAMWISE instantiates SAM2 from the plain Hydra config (no video-predictor extras): the single-mask
# output never falls back to a multimask output, and memories are encoded from soft mask logits.
SAMWISE_SAM2_OVERRIDES: tuple[str, ...] = (
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=false",
    "++model.binarize_mask_from_pts_for_mem_enc=false",
)


@dataclass
class TextEncoderConfig:
    """RoBERTa through `transformers.RobertaModel` (RoBERTa-base at full size). Frozen."""

    vocab_size: int = 50265
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 514
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 1
    bos_token_id: int = 0
    eos_token_id: int = 2
    dropout: float = 0.1
    # A Hugging Face name or folder, or "packaged:<name>" for a tokenizer shipped in videoglamm/assets.
    tokenizer: str = "FacebookAI/roberta-base"
    # None: captions are never cut (official); longer than the position table is an error. An int truncates
    # every caption to that many tokens (with <s> and </s>).
    max_length: int | None = None

    def __post_init__(self) -> None:
        _check(self.hidden_size % self.num_heads == 0,
               f"text.hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        _check(self.num_layers >= 1, f"text.num_layers must be >= 1, got {self.num_layers}")
        limit = self.max_position_embeddings - self.pad_token_id - 1  # RoBERTa positions start after the pad id
        _check(self.max_length is None or 3 <= self.max_length <= limit,
               f"text.max_length {self.max_length} must be None or in [3, {limit}] (the position table's limit)")

    def to_roberta(self) -> Any:
        """The matching `transformers.RobertaConfig`."""
        from transformers import RobertaConfig

        return RobertaConfig(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads, intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings, type_vocab_size=1,
            layer_norm_eps=self.layer_norm_eps, pad_token_id=self.pad_token_id, bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id, hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout, attn_implementation="sdpa",
        )


@dataclass
class CMTAdapterConfig:
    """Cross-Modal Temporal adapters, one per fusion point."""

    enabled: bool = True  # False: the towers run unfused (ablation); the adapters exist but neither run nor train
    dim: int = 256
    num_heads: int = 8
    fusion_stages: tuple[int, ...] = (2, 3, 4)  # 1-based Hiera stages an adapter follows
    text_layers: tuple[int, ...] = (4, 8, 12)  # RoBERTa layers run before each adapter (cumulative)
    hsa_patch_sizes: tuple[int, ...] = (8, 4, 2)
    use_hsa: bool = True  # the pretraining configuration runs without HSA
    hsa_dropout: float = 0.1
    # "local": attention inside each P x P x T subvolume (official); "global": over every clip position.
    hsa_scope: str = "local"

    def __post_init__(self) -> None:
        self.fusion_stages, self.text_layers = tuple(self.fusion_stages), tuple(self.text_layers)
        self.hsa_patch_sizes = tuple(self.hsa_patch_sizes)
        n = len(self.fusion_stages)
        _check(n >= 1 and len(self.text_layers) == n and len(self.hsa_patch_sizes) == n,
               f"adapter: fusion_stages {self.fusion_stages}, text_layers {self.text_layers} and hsa_patch_sizes "
               f"{self.hsa_patch_sizes} must have the same non-zero length (one entry per adapter)")
        _check(list(self.fusion_stages) == sorted(set(self.fusion_stages)) and all(1 <= s <= 4 for s in self.fusion_stages),
               f"adapter.fusion_stages {self.fusion_stages} must be increasing Hiera stages in 1..4")
        _check(list(self.text_layers) == sorted(set(self.text_layers)) and self.text_layers[0] >= 1,
               f"adapter.text_layers {self.text_layers} must be increasing layer counts >= 1")
        _check(self.dim % self.num_heads == 0, f"adapter.dim {self.dim} not divisible by num_heads {self.num_heads}")
        _check(self.hsa_scope in ("local", "global"), f"adapter.hsa_scope must be 'local' or 'global', got {self.hsa_scope!r}")


@dataclass
class PromptConfig:
    """Text prompts for the SAM2 mask decoder."""

    motion_prompt: bool = False  # verb tokens as a second sparse token; off in the released models
    # The official trainable filter leaves the motion projection frozen at its initial copy of the prompt
    # projection; True trains it with the rest.
    train_motion_projection: bool = False


@dataclass
class CMEConfig:
    """Conditional Memory Encoder."""

    enabled: bool = True
    num_heads: int = 8
    ffn_dim: int = 128
    dropout: float = 0.1
    decision_window: int = 4
    min_area: int = 50  # pseudo-labels: ignore frames where both masks have at most this many pixels
    overlap_threshold: float = 0.1  # label "switch" when intersection / min area is below this
    switch_scale: float = 10.0  # "reweight": memoryless logits x this where they are foreground

    def __post_init__(self) -> None:
        _check(self.decision_window >= 1, f"cme.decision_window must be >= 1, got {self.decision_window}")


@dataclass
class InferenceConfig:
    clip_length: int = 8  # T: frames per clip (HSA and TVA see the clip jointly)
    # Frames go through torchvision Resize(resize_short_side, max_size=sam2.image_size) on PIL images, as the
    # official evaluation (1020 at 1024 px). None: the longer side to image_size (the training-time shape).
    resize_short_side: int | None = 1020
    # False: prompts are tokenized as given (official inference). True: lower-cased and whitespace-collapsed
    # like the training captions.
    normalise_prompts: bool = False
    mask_threshold: float = 0.0  # on logits; 0 = probability 0.5
    # Empty the mask where SAM2's object score is <= 0 (the released behaviour). False for a SAM2 whose
    # object-score head was never trained (e.g. the shipped tiny synthetic one): its score is noise near 0.
    suppress_absent: bool = True

    def __post_init__(self) -> None:
        _check(self.clip_length >= 1, f"inference.clip_length must be >= 1, got {self.clip_length}")


@dataclass
class SAMWISELossConfig:
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    focal_weight: float = 1.0
    dice_weight: float = 1.0
    cme_weight: float = 1.0
    cme_class_weights: tuple[float, float] = (1.0, 2.0)  # class 1 = switch
    # BCE on SAM2's object-score logits (target: the frame's ground truth is non-empty). 0 in the released
    # recipe, whose pretrained SAM2 already scores text prompts as present; inference suppresses every
    # mask whose score is <= 0, so a SAM2 whose score head never saw these prompts needs it.
    object_score_weight: float = 0.0

    def __post_init__(self) -> None:
        self.cme_class_weights = tuple(self.cme_class_weights)  # type: ignore[assignment]
        _check(len(self.cme_class_weights) == 2, f"loss.cme_class_weights needs 2 values, got {self.cme_class_weights}")


_SUBCONFIGS: dict[str, type] = {
    "sam2": SAM2Config,
    "text": TextEncoderConfig,
    "adapter": CMTAdapterConfig,
    "prompt": PromptConfig,
    "cme": CMEConfig,
    "inference": InferenceConfig,
    "loss": SAMWISELossConfig,
}


class SAMWISEConfig(SectionedConfig):
    """Configuration of SAMWISE.

    Args:
        sam2, text, adapter, prompt, cme, inference, loss: each a dict or the matching dataclass;
            missing ones take the samwise-base defaults (except `sam2`, whose default is set by the preset).
        preset: the preset this config came from (informational).

    Raises:
        ConfigError: an unknown section or field, or values that contradict each other.
    """

    model_type = "samwise"
    section_types: ClassVar[dict[str, type]] = _SUBCONFIGS
    sub_sections: ClassVar[tuple[str, ...]] = tuple(_SUBCONFIGS)
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    # transformers 5 turns a config subclass without its own __init__ into a dataclass whose generated
    # __init__ would skip the sections, so each concrete config keeps this one-line __init__.
    def __init__(self, preset: str | None = None, **kwargs: Any) -> None:
        super().__init__(preset=preset, **kwargs)

    def _validate(self) -> None:
        a = self.adapter
        short = self.inference.resize_short_side
        _check(short is None or 1 <= short < self.sam2.image_size,
               f"inference.resize_short_side {short} must be None or in [1, {self.sam2.image_size}) "
               f"(torchvision's Resize needs max_size = sam2.image_size above it)")
        _check(a.text_layers[-1] <= self.text.num_layers,
               f"adapter.text_layers {a.text_layers} exceed the text encoder's {self.text.num_layers} layers")
        for stage, patch in zip(a.fusion_stages, a.hsa_patch_sizes):
            side = self.stage_side(stage)
            _check(patch >= 1 and side % patch == 0,
                   f"adapter.hsa_patch_sizes: patch {patch} does not tile the {side}x{side} map of Hiera stage "
                   f"{stage} at sam2.image_size {self.sam2.image_size}")

    def stage_side(self, stage: int) -> int:
        """Side of Hiera stage `stage`'s (1-based) feature map: stride 4 then halved per stage."""
        return self.sam2.image_size // (4 * 2 ** (stage - 1))


SAMWISE_PRESETS: dict[str, dict[str, Any]] = {
    "samwise-base": {
        "sam2": {"variant": "configs/sam2/sam2_hiera_b+.yaml", "image_size": 1024,
                 "overrides": SAMWISE_SAM2_OVERRIDES, "max_objects": 1},
    },
    "samwise-tiny": {
        # Hiera 1-1-2-1 blocks (channels 8/16/32/64), d_model 32, 64 px: stage maps 16/8/4/2.
        "sam2": {"variant": "configs/sam2/sam2_hiera_t.yaml", "image_size": 64,
                 "overrides": (*_TINY_SAM2_OVERRIDES, *SAMWISE_SAM2_OVERRIDES), "max_objects": 1},
        "text": {"vocab_size": 400, "hidden_size": 32, "num_layers": 4, "num_heads": 2, "intermediate_size": 64,
                 "max_position_embeddings": 66, "tokenizer": "packaged:samwise-tiny"},
        "adapter": {"dim": 16, "num_heads": 2, "text_layers": (2, 3, 4), "hsa_patch_sizes": (4, 2, 1)},
        "cme": {"num_heads": 2, "ffn_dim": 16, "min_area": 2, "decision_window": 2},
        # 63 = floor(1020 / 1024 * 64): the official resize rule at the tiny input size.
        "inference": {"clip_length": 4, "resize_short_side": 63},
    },
}

SAMWISEConfig.presets = SAMWISE_PRESETS
