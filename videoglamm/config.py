"""Typed configuration of VideoGLaMM: one `VideoGLaMMConfig` with nested, validated sub-configs.

Presets are plain data (`PRESETS`). `VideoGLaMMConfig.from_preset(name)` builds one; the config is saved
as `config.json` next to the weights and read back by `VideoGLaMMConfig.from_pretrained(dir)`.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from transformers import PretrainedConfig

from videoglamm.errors import ConfigError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass
class ImageTowerConfig:
    """open_clip VisionTransformer (CLIP ViT-L/14-336 at full size). Frozen."""

    image_size: int = 336
    patch_size: int = 14
    width: int = 1024
    layers: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0
    output_dim: int = 768
    quick_gelu: bool = True  # the OpenAI CLIP weights were trained with QuickGELU
    feature_layer: int = -2  # hidden state index in HF convention: -2 = penultimate block output
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self) -> None:
        _check(self.image_size % self.patch_size == 0,
               f"image_tower.image_size {self.image_size} is not divisible by patch_size {self.patch_size}")
        _check(self.width % self.heads == 0, f"image_tower.width {self.width} not divisible by heads {self.heads}")
        _check(-self.layers <= self.feature_layer < 0 or 1 <= self.feature_layer <= self.layers,
               f"image_tower.feature_layer {self.feature_layer} is outside 1..{self.layers} (or -{self.layers}..-1)")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_blocks_used(self) -> int:
        """How many transformer blocks run to produce the selected feature."""
        # HF hidden_states has layers + 1 entries (embeddings first): index -1 = last block, -2 = one before.
        return self.layers + 1 + self.feature_layer if self.feature_layer < 0 else self.feature_layer


@dataclass
class VideoTowerConfig:
    """InternVideo2 vision encoder (1B at full size), run on segments of `num_frames` frames. Frozen."""

    image_size: int = 224
    patch_size: int = 14
    num_frames: int = 4  # frames per segment
    tubelet_size: int = 1
    width: int = 1408
    depth: int = 40
    heads: int = 16
    mlp_ratio: float = 48 / 11
    qk_norm: bool = True
    layer_scale_init: float = 1e-5
    norm_eps: float = 1e-6
    feature_block: int = 39  # 1-based: the output of this block is the feature (no final norm)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        _check(self.image_size % self.patch_size == 0,
               f"video_tower.image_size {self.image_size} is not divisible by patch_size {self.patch_size}")
        _check(self.width % self.heads == 0, f"video_tower.width {self.width} not divisible by heads {self.heads}")
        _check(self.tubelet_size == 1, "video_tower.tubelet_size must be 1 (the released InternVideo2 uses 1)")
        _check(1 <= self.feature_block <= self.depth,
               f"video_tower.feature_block {self.feature_block} is outside 1..{self.depth}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def mlp_hidden(self) -> int:
        return int(self.width * self.mlp_ratio)


@dataclass
class AdapterConfig:
    """V->L adapters: a 2-layer GELU MLP per tower, then adaptive average pooling per frame."""

    image_pool: int = 12  # 24x24 -> 12x12 = 144 tokens per frame
    video_pool: int = 8  # 16x16 -> 8x8 = 64 tokens per frame
    trainable: bool = True  # the official recipe froze them by accident (reference §9.2)


@dataclass
class LLMConfig:
    """Phi-3 language model (`transformers.Phi3Config` fields)."""

    vocab_size: int = 32012  # Phi-3 tokenizer (32011) + [SEG]
    hidden_size: int = 3072
    intermediate_size: int = 8192
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 32
    max_position_embeddings: int = 4096
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    bos_token_id: int = 1
    eos_token_id: int = 32000
    pad_token_id: int = 0
    attn_implementation: str = "sdpa"

    def __post_init__(self) -> None:
        _check(self.hidden_size % self.num_attention_heads == 0,
               f"llm.hidden_size {self.hidden_size} not divisible by num_attention_heads {self.num_attention_heads}")
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(self, name)
            _check(0 <= value < self.vocab_size, f"llm.{name}={value} is outside the vocabulary (0..{self.vocab_size - 1})")

    def to_phi3(self) -> "Any":
        from transformers import Phi3Config

        kwargs = dataclasses.asdict(self)
        attn = kwargs.pop("attn_implementation")
        cfg = Phi3Config(**kwargs, tie_word_embeddings=False)
        cfg._attn_implementation = attn
        return cfg


@dataclass
class LoRAConfig:
    """LoRA applied by `videoglamm.modeling.llm.apply_lora` when fine-tuning; presets carry none."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    # The official code matched `qkv_proj` through the substring "v_proj" by accident; we name it.
    target_modules: tuple[str, ...] = ("qkv_proj",)

    def __post_init__(self) -> None:
        _check(self.r > 0, f"lora.r must be positive, got {self.r}")
        _check(len(self.target_modules) > 0, "lora.target_modules is empty")
        self.target_modules = tuple(self.target_modules)


@dataclass
class SegProjectorConfig:
    """L->V projector: hidden -> hidden -> out_dim with ReLU, one SAM2 prompt token per [SEG]."""

    out_dim: int = 256
    # "before_seg": the hidden state of the token preceding [SEG] (the official/LISA convention, needed
    # for released weights); "seg": the hidden state at the [SEG] position itself; "phrase": the mean of
    # the [SEG] position's and of the `<p> ... </p>` phrase's hidden states right before it (ours, for
    # LLMs trained from scratch, whose [SEG] state barely depends on the phrase; see
    # configs/train/tiny_synthetic.yaml).
    hidden_source: str = "before_seg"

    def __post_init__(self) -> None:
        _check(self.hidden_source in HIDDEN_SOURCES,
               f"seg_projector.hidden_source must be one of {HIDDEN_SOURCES}, got {self.hidden_source!r}")


HIDDEN_SOURCES = ("before_seg", "seg", "phrase")


@dataclass
class SAM2Config:
    """SAM2 through the `sam2` package: a packaged Hydra config plus overrides."""

    variant: str = "configs/sam2/sam2_hiera_l.yaml"
    image_size: int = 1024
    train_mask_decoder: bool = False
    # Train the whole SAM2 (image encoder, memory included). Only for models trained from scratch, such as
    # the tiny synthetic demo, whose SAM2 has no pretrained weights to keep.
    train_all: bool = False
    # Extra Hydra overrides (e.g. tiny Hiera dims); applied after image_size.
    overrides: tuple[str, ...] = ()
    # In eval mode, replace an unstable single-mask output by the best of SAM2's multimask outputs (the
    # official `dynamic_multimask_via_stability` post-processing). Those outputs come from mask tokens that
    # single-mask training never updates, so a SAM2 trained from scratch that way must turn this off:
    # its fallback masks would be untrained noise.
    multimask_fallback: bool = True
    max_objects: int = 4  # [SEG] tokens per sample that receive mask supervision / tracking slots

    def __post_init__(self) -> None:
        _check(self.image_size % 16 == 0 and self.image_size >= 64,
               f"sam2.image_size must be a multiple of 16 and >= 64, got {self.image_size}")
        _check(self.max_objects >= 1, f"sam2.max_objects must be >= 1, got {self.max_objects}")
        self.overrides = tuple(self.overrides)


@dataclass
class SamplingConfig:
    """How many frames each part sees."""

    encoder_frames: int = 16  # frames for both encoders (same frames)
    segment_frames: int = 4  # InternVideo2 segment length
    sam_frames: int = 8  # frames decoded with mask supervision during training

    def __post_init__(self) -> None:
        _check(self.encoder_frames > 0 and self.segment_frames > 0 and self.sam_frames > 0,
               "sampling: frame counts must be positive")
        _check(self.encoder_frames % self.segment_frames == 0,
               f"sampling.encoder_frames ({self.encoder_frames}) must be divisible by "
               f"sampling.segment_frames ({self.segment_frames})")


@dataclass
class TokenConfig:
    seg_token: str = "[SEG]"
    video_token: str = "<video>"  # text marker; expanded into `video_token_id` placeholders
    # Placeholder id outside the vocabulary (like the official IMAGE_TOKEN_INDEX), so the vocabulary of
    # the released checkpoint (32012 rows) is unchanged.
    video_token_id: int = -200
    seg_token_id: int = 32011
    system_prompt: str = "You are a helpful AI assistant."


FRAME_SAMPLINGS = ("uniform", "spread", "first")
MASK_MODES = ("track", "framewise")
PROMPT_FRAMES = ("first", "encoder")


@dataclass
class InferenceConfig:
    """What a plain `predict()` does with this model; every field can be overridden per call.

    The defaults are the official inference (`chat.py`, the eval runners): a video file is decoded at
    1 fps and capped at 64 frames before the encoder frames are picked with a truncating linspace, SAM2
    tracks from frame 0 with its memory, and answers get up to 512 new tokens. Masks always cover every
    frame of the video, whatever the encoders saw.
    """

    num_frames: int | None = None  # encoder frames; None: sampling.encoder_frames
    # "uniform": np.linspace(0, T-1, n, dtype=int), a video shorter than n gives all its frames then the
    # last one repeated (official); "spread": rounded linspace, repeats spread over a short video;
    # "first": the first n frames.
    frame_sampling: str = "uniform"
    video_fps: float | None = 1.0  # decode video files at this rate for the encoders; None: every frame
    max_video_frames: int | None = 64  # cap (linspace) on the decoded frames before encoder sampling
    max_new_tokens: int = 512
    mask_mode: str = "track"  # "track": SAM2 memory propagation; "framewise": each frame on its own
    prompt_frames: str = "first"  # "first": frame 0 carries the prompts; "encoder": every encoder frame

    def __post_init__(self) -> None:
        _check(self.frame_sampling in FRAME_SAMPLINGS,
               f"inference.frame_sampling must be one of {FRAME_SAMPLINGS}, got {self.frame_sampling!r}")
        _check(self.mask_mode in MASK_MODES, f"inference.mask_mode must be one of {MASK_MODES}, got {self.mask_mode!r}")
        _check(self.prompt_frames in PROMPT_FRAMES,
               f"inference.prompt_frames must be one of {PROMPT_FRAMES}, got {self.prompt_frames!r}")
        _check(self.num_frames is None or (isinstance(self.num_frames, int) and self.num_frames > 0),
               f"inference.num_frames must be a positive integer or null, got {self.num_frames!r}")
        _check(self.video_fps is None or self.video_fps > 0, f"inference.video_fps must be > 0 or null, got {self.video_fps}")
        _check(self.max_video_frames is None or self.max_video_frames > 0,
               f"inference.max_video_frames must be > 0 or null, got {self.max_video_frames}")
        _check(isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1,
               f"inference.max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")


@dataclass
class LossConfig:
    ce_weight: float = 1.0
    bce_weight: float = 2.0
    dice_weight: float = 0.5


_SUBCONFIGS: dict[str, type] = {
    "image_tower": ImageTowerConfig,
    "video_tower": VideoTowerConfig,
    "adapter": AdapterConfig,
    "llm": LLMConfig,
    "lora": LoRAConfig,
    "seg_projector": SegProjectorConfig,
    "sam2": SAM2Config,
    "sampling": SamplingConfig,
    "tokens": TokenConfig,
    "loss": LossConfig,
    "inference": InferenceConfig,
}


def _as_section(sections: dict[str, type], name: str, value: Any) -> Any:
    cls = sections[name]
    if value is None:
        return cls()
    if isinstance(value, cls):
        return copy.deepcopy(value)
    if isinstance(value, dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        _check(not unknown, f"unknown field(s) {unknown} in config section '{name}'; known: {sorted(known)}")
        from videoglamm.typecheck import check_field_types

        check_field_types(cls, value, name)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
    raise ConfigError(f"config section '{name}' must be a dict or {cls.__name__}, got {type(value).__name__}")


class SectionedConfig(PretrainedConfig):
    """A `PretrainedConfig` made of typed dataclass sections, built from plain-data presets.

    Subclasses set `sections` (name -> dataclass) and `presets` (name -> {section: {field: value}}), and
    may override `_validate` for checks across sections.
    """

    section_types: ClassVar[dict[str, type]] = {}
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, preset: str | None = None, **kwargs: Any) -> None:
        values = {name: _as_section(self.section_types, name, kwargs.pop(name, None)) for name in self.section_types}
        super().__init__(**kwargs)
        for name, value in values.items():
            setattr(self, name, value)
        self.preset = preset
        self._validate()

    def _validate(self) -> None:
        """Checks across sections; each section validates itself."""

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for name in self.section_types:
            out[name] = dataclasses.asdict(getattr(self, name))
        return out

    def to_diff_dict(self) -> dict[str, Any]:
        # Always write every section in full: a reader should not need our defaults to rebuild the model.
        out = super().to_diff_dict()
        for name in self.section_types:
            out[name] = dataclasses.asdict(getattr(self, name))
        out["preset"] = self.preset
        return out

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "SectionedConfig":
        """Build a preset config. `overrides` maps section -> dict of fields to change.

        Raises:
            ConfigError: unknown preset or section.
        """
        if name not in cls.presets:
            raise ConfigError(f"unknown preset {name!r} for {cls.__name__}; available: {sorted(cls.presets)}")
        data = copy.deepcopy(cls.presets[name])
        for section, values in overrides.items():
            if section not in cls.section_types:
                raise ConfigError(f"unknown config section {section!r}; known: {sorted(cls.section_types)}")
            data.setdefault(section, {}).update(values)
        return cls(preset=name, **data)


class VideoGLaMMConfig(SectionedConfig):
    """Configuration of the whole VideoGLaMM model.

    Args:
        image_tower, video_tower, adapter, llm, lora, seg_projector, sam2, sampling, tokens, loss, inference:
            each a dict or the matching dataclass; missing ones take the full-size defaults.
        preset: the preset name this config came from (informational; decides which shipped weights
            `from_pretrained(preset)` may find).

    Raises:
        ConfigError: when a section is unknown, a field is unknown, or values contradict each other.
    """

    model_type = "videoglamm"
    section_types: ClassVar[dict[str, type]] = _SUBCONFIGS
    sub_sections: ClassVar[tuple[str, ...]] = tuple(_SUBCONFIGS)

    def _validate(self) -> None:
        s, vt, it = self.sampling, self.video_tower, self.image_tower
        _check(vt.num_frames == s.segment_frames,
               f"video_tower.num_frames ({vt.num_frames}) must equal sampling.segment_frames ({s.segment_frames})")
        _check(it.grid % self.adapter.image_pool == 0 or it.grid >= self.adapter.image_pool,
               f"adapter.image_pool {self.adapter.image_pool} is larger than the image grid {it.grid}")
        _check(vt.grid >= self.adapter.video_pool,
               f"adapter.video_pool {self.adapter.video_pool} is larger than the video grid {vt.grid}")
        tok = self.tokens
        _check(0 <= tok.seg_token_id < self.llm.vocab_size,
               f"tokens.seg_token_id {tok.seg_token_id} is outside the LLM vocabulary (size {self.llm.vocab_size})")
        _check(tok.video_token_id < 0, "tokens.video_token_id must be negative (a placeholder outside the vocabulary)")

    # transformers 5 turns a config subclass without its own __init__ into a dataclass whose generated
    # __init__ would skip the sections, so each concrete config keeps this one-line __init__.
    def __init__(self, preset: str | None = None, **kwargs: Any) -> None:
        super().__init__(preset=preset, **kwargs)

    # -- derived sizes ---------------------------------------------------------------------------
    @property
    def image_tokens_per_frame(self) -> int:
        return self.adapter.image_pool**2

    @property
    def video_tokens_per_frame(self) -> int:
        return self.adapter.video_pool**2

    @property
    def num_visual_tokens(self) -> int:
        """Visual tokens spliced into the LLM per video: CLIP tokens of every frame, then InternVideo2 tokens."""
        return self.sampling.encoder_frames * (self.image_tokens_per_frame + self.video_tokens_per_frame)


_TINY_SAM2_OVERRIDES = (
    # Hiera with 1-1-2-1 blocks and small widths; all SAM2 heads at d_model 32. The global-attention
    # block must not open a stage: Hiera's q-pool blocks need a window (window 0 divides by zero).
    "++model.image_encoder.trunk.embed_dim=8",
    "++model.image_encoder.trunk.num_heads=1",
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[4,4]",
    "++model.image_encoder.trunk.window_spec=[4,4,4,4]",
    "++model.image_encoder.neck.d_model=32",
    "++model.image_encoder.neck.backbone_channel_list=[64,32,16,8]",
    "++model.image_encoder.neck.position_encoding.num_pos_feats=32",
    "++model.memory_attention.d_model=32",
    "++model.memory_attention.num_layers=1",
    "++model.memory_attention.layer.d_model=32",
    "++model.memory_attention.layer.dim_feedforward=64",
    "++model.memory_attention.layer.self_attention.embedding_dim=32",
    "++model.memory_attention.layer.self_attention.num_heads=1",
    "++model.memory_attention.layer.self_attention.feat_sizes=[4,4]",
    "++model.memory_attention.layer.cross_attention.embedding_dim=32",
    "++model.memory_attention.layer.cross_attention.num_heads=1",
    "++model.memory_attention.layer.cross_attention.kv_in_dim=16",
    "++model.memory_attention.layer.cross_attention.feat_sizes=[4,4]",
    "++model.memory_encoder.in_dim=32",
    "++model.memory_encoder.out_dim=16",
    "++model.memory_encoder.position_encoding.num_pos_feats=16",
    "++model.memory_encoder.mask_downsampler.embed_dim=32",
    "++model.memory_encoder.fuser.layer.dim=32",
)

PRESETS: dict[str, dict[str, Any]] = {
    "videoglamm-phi3-mini": {},  # every section at its full-size default
    "videoglamm-tiny": {
        "image_tower": {"image_size": 56, "patch_size": 14, "width": 32, "layers": 2, "heads": 2, "output_dim": 16},
        "video_tower": {"image_size": 56, "patch_size": 14, "width": 48, "depth": 2, "heads": 2, "feature_block": 1},
        "adapter": {"image_pool": 2, "video_pool": 2},
        "llm": {
            "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 1024,
            "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
        },
        "lora": {"r": 4, "alpha": 8},
        "seg_projector": {"out_dim": 32},
        "sam2": {"variant": "configs/sam2/sam2_hiera_t.yaml", "image_size": 64, "overrides": _TINY_SAM2_OVERRIDES,
                 "multimask_fallback": False},
        "sampling": {"encoder_frames": 8, "segment_frames": 4, "sam_frames": 4},
        "tokens": {"seg_token_id": 511},
    },
}
# The tiny towers, SAM2 and tokenizer with an LLM wide enough (8 layers x 1024) that decoding dominates the
# cost of a prediction, as it does at full size: the preset the batching and KV-cache benchmarks time.
PRESETS["videoglamm-mid"] = {
    **copy.deepcopy(PRESETS["videoglamm-tiny"]),
    "llm": {**PRESETS["videoglamm-tiny"]["llm"], "hidden_size": 1024, "intermediate_size": 2816,
            "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 16},
}

VideoGLaMMConfig.presets = PRESETS
