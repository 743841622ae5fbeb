"""The training recipe: a YAML file with `model`, `data`, `optim` and `train` sections.

    model: {preset: NAME, overrides: {section: {field: value}}, weights: DIR|null, lora: bool,
            train_llm: bool, gradient_checkpointing: bool}
    data:  {datasets: [{name, reader, constructor, args, weight}], synthetic: [...], seed, ...}
    optim: {lr, betas, weight_decay, warmup_steps, grad_clip}
    train: {output_dir, max_steps, micro_batch_size, grad_accum, precision, backend, ...}

`key.path=value` overrides (list entries by index: `data.datasets.0.weight=2`) are parsed as YAML
and applied before the
sections are validated, so `train.max_steps=2` and `model.lora=false` both work.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from videoglamm.errors import ConfigError


@dataclass
class ModelSection:
    preset: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    weights: str | None = None  # a save_pretrained folder to start from (None: random init from the seed)
    # Trained SAM2 weights for a fresh run (an official SAM2 checkpoint, a SAM2 state-dict file, or a
    # VideoGLaMM folder / shipped name), copied over whatever `weights` gave; see modeling.sam2_weights.
    sam2_weights: str | None = None
    # Trained LLM weights for a fresh run: a state-dict file of the language model (what
    # train/llm_synthetic.py writes), copied strictly over whatever `weights` gave.
    llm_weights: str | None = None
    lora: bool = False  # wrap the LLM with LoRA (config.lora); the official recipe does
    train_llm: bool = False  # train every LLM weight (only for from-scratch models such as the tiny demo)
    gradient_checkpointing: bool = False


@dataclass
class DatasetEntry:
    """One reader of `videoglamm.data.readers`, built as `Reader.<constructor>(**args)`, with its weight."""

    name: str
    reader: str
    weight: float
    args: dict[str, Any] = field(default_factory=dict)
    constructor: str | None = None


@dataclass
class SyntheticEntry:
    """A synthetic set written with `write_dataset` before training when `root` does not exist yet."""

    root: str
    videos: int
    seed: int
    frames: int = 12
    size: tuple[int, int] = (96, 128)


@dataclass
class DataSection:
    datasets: list[DatasetEntry]
    synthetic: list[SyntheticEntry] = field(default_factory=list)
    samples_per_epoch: int | None = None
    seed: int = 0
    max_bad_fraction: float = 0.05


@dataclass
class OptimSection:
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    warmup_steps: int = 100
    grad_clip: float = 1.0


@dataclass
class TrainSection:
    output_dir: str
    max_steps: int
    micro_batch_size: int = 1
    grad_accum: int = 1
    precision: str = "fp32"  # "fp32" or "bf16"
    backend: str = "accelerate"  # "accelerate" (DDP) or "deepspeed"
    deepspeed_config: str | None = None
    save_every: int = 100
    keep_last: int = 2
    log_every: int = 10
    seed: int = 0
    max_skipped_steps: int = 20  # non-finite losses tolerated before the run stops
    progress: bool = True
    # {parameter-name prefix: step}: those parameters get no update before that step (staged training,
    # e.g. keep a from-scratch mask decoder at its prompt-sensitive init while the LLM learns to prompt it).
    freeze_until: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"train.precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.backend not in ("accelerate", "deepspeed"):
            raise ConfigError(f"train.backend must be 'accelerate' or 'deepspeed', got {self.backend!r}")
        if self.backend == "deepspeed" and self.freeze_until:
            raise ConfigError("train.freeze_until works with the accelerate backend only "
                              "(DeepSpeed flattens gradients)")
        if self.backend == "deepspeed" and not self.deepspeed_config:
            raise ConfigError("train.backend=deepspeed needs train.deepspeed_config "
                              "(configs/deepspeed/zero2.json)")
        for name in ("max_steps", "micro_batch_size", "grad_accum", "save_every", "keep_last", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class TrainConfig:
    model: ModelSection
    data: DataSection
    optim: OptimSection
    train: TrainSection
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; known: {sorted(known)}")
    from videoglamm.typecheck import check_field_types

    check_field_types(cls, value, where)  # "no" for a bool or 2.5 for a step count is refused, not coerced
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) and k in ("betas", "size") else v
                      for k, v in value.items()})
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from None


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` strings (values parsed as YAML) to a nested dict; returns a new dict.

    Raises:
        ConfigError: an override lacks '=' or walks through a non-mapping.
    """
    import yaml

    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node: Any = out
        for part in parts[:-1]:
            node = _child(node, part, item)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({' '.join(str(err).split())})") from None
        if isinstance(node, list):
            node[_list_index(node, parts[-1], item)] = value
        else:
            node[parts[-1]] = value
    return out


def _list_index(node: list, part: str, item: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override {item!r}: {part!r} is not an index of a list of {len(node)}")
    return int(part)


def _child(node: Any, part: str, item: str) -> Any:
    """Walk one key of an override path; list entries are addressed by index (data.datasets.0.weight)."""
    if isinstance(node, list):
        return node[_list_index(node, part, item)]
    if not isinstance(node, dict):
        raise ConfigError(f"override {item!r}: {part!r} is not inside a mapping or list")
    return node.setdefault(part, {})


def from_dict(raw: dict[str, Any], source: str = "") -> TrainConfig:
    """Validate a raw recipe dict (as read from YAML) into a `TrainConfig`."""
    for section in ("model", "data", "train"):
        if section not in raw:
            raise ConfigError(f"{source or 'recipe'}: missing section '{section}'")
    unknown = sorted(set(raw) - {"model", "data", "optim", "train"})
    if unknown:
        raise ConfigError(f"{source or 'recipe'}: unknown section(s) {unknown}")
    data = dict(raw["data"])
    data["datasets"] = [_build(DatasetEntry, d, f"data.datasets[{i}]")
                        for i, d in enumerate(data.get("datasets", []))]
    data["synthetic"] = [_build(SyntheticEntry, d, f"data.synthetic[{i}]")
                         for i, d in enumerate(data.get("synthetic", []))]
    if not data["datasets"]:
        raise ConfigError(f"{source or 'recipe'}: data.datasets is empty")
    return TrainConfig(
        model=_build(ModelSection, raw["model"], "model"),
        data=_build(DataSection, data, "data"),
        optim=_build(OptimSection, raw.get("optim", {}), "optim"),
        train=_build(TrainSection, raw["train"], "train"),
        source=source,
    )


def read_recipe(path: str | Path) -> Any:
    """The parsed YAML of a recipe file.

    Raises:
        ConfigError: the file is missing or not valid YAML (the position is named).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"training config {path} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a recipe YAML and apply command-line overrides.

    Raises:
        ConfigError: missing file, unknown keys, invalid values.
    """
    raw = read_recipe(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} does not hold a mapping")
    return from_dict(apply_overrides(raw, overrides), str(path))


def model_config(cfg: ModelSection) -> Any:
    """The `VideoGLaMMConfig` of the recipe (preset + overrides)."""
    from videoglamm.config import VideoGLaMMConfig

    return VideoGLaMMConfig.from_preset(cfg.preset, **cfg.overrides)
