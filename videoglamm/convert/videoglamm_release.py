"""Convert the HF-format VideoGLaMM release (`VideoGPTPlus-Phi3-SAM2-8frame-tunevlproj-epoch29`) to our keys.

The release holds the merged Phi-3 LLM, the InternVideo2 tower, both V->L projectors, SAM2 and the `[SEG]`
projector, but not CLIP (the official export filter drops it), which comes from the CLIP hub file.

Names are related part by part through exact rules, and the source -> target table is built from the target
model's own key list (`release_name_map`), so it is a bijection by construction and its inverse
(`to_official_release`) round-trips. Renames:
  llm.<k>                          <- <k>                                  (Phi-3, already merged)
  video_tower.<k>                  <- model.vision_tower.<InternVideo2 name of k>   (see `internvideo2`)
  video_adapter.fc{1,2}.*          <- model.mm_projector.{0,2}.*
  image_adapter.fc{1,2}.*          <- model.image_mm_projector.{0,2}.*
  seg_projector.fc{1,2}.*          <- model.text_hidden_fcs.0.{0,2}.*
  mask_decoder.model.<k>           <- model.visual_model.<k>, with `memory_encoder.fuser.layers.N.gamma`
                                      saved as `.weight` (VideoGLaMM's vendored SAM2 renamed it)
The unused InternVideo2 tensors the release carries are dropped through the tower's named allow-list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from videoglamm.config import VideoGLaMMConfig
from videoglamm.convert import internvideo2 as iv2
from videoglamm.convert._strict import ConversionReport, IncrementalCheck, check_conversion, map_names
from videoglamm.convert.parts import PARTS, part_shapes
from videoglamm.errors import CheckpointError
from videoglamm.processing.tokens import SEG_TOKEN

RELEASE_PARTS: tuple[str, ...] = tuple(p for p in PARTS if p != "image_tower")
VIDEO_PREFIX = "model.vision_tower."
SAM2_PREFIX = "model.visual_model."
_FUSER_GAMMA = re.compile(r"memory_encoder\.fuser\.layers\.(\d+)\.gamma")

# ours -> release, for the small modules; index 1 of each Sequential is the activation (no weights).
_SMALL: dict[str, str] = {
    f"{ours}.fc{i + 1}.{leaf}": f"model.{official}.{idx}.{leaf}"
    for ours, official in (("video_adapter", "mm_projector"), ("image_adapter", "image_mm_projector"),
                           ("seg_projector", "text_hidden_fcs.0"))
    for i, idx in enumerate((0, 2))
    for leaf in ("weight", "bias")
}

# Where each part of the report counts "renamed" from (a namespace move alone is not a rename).
_PART_PREFIXES: dict[str, tuple[str, str]] = {
    "llm": ("", "llm."),
    "video_tower": (VIDEO_PREFIX + iv2.OFFICIAL_PREFIX, "video_tower."),
    "image_adapter": ("", ""),
    "video_adapter": ("", ""),
    "seg_projector": ("", ""),
    "mask_decoder": (SAM2_PREFIX, "mask_decoder.model."),
}


def sam2_official_name(key: str, gamma_named_weight: bool) -> str:
    """A `SAM2Base` key under its checkpoint name (VideoGLaMM's vendored SAM2: fuser `gamma` -> `weight`)."""
    m = _FUSER_GAMMA.fullmatch(key) if gamma_named_weight else None
    return f"memory_encoder.fuser.layers.{m.group(1)}.weight" if m else key


def release_name(key: str) -> str | None:
    """The release name of one of our keys; None for `image_tower.*` (not in the release).

    Raises:
        CheckpointError: `key` is not a key of `VideoGLaMM`.
    """
    if key.startswith("llm."):
        return key[len("llm."):]
    if key.startswith("video_tower."):
        return VIDEO_PREFIX + iv2._official_name(key[len("video_tower."):])
    if key.startswith("mask_decoder.model."):
        return SAM2_PREFIX + sam2_official_name(key[len("mask_decoder.model."):], gamma_named_weight=True)
    if key in _SMALL:
        return _SMALL[key]
    if key.startswith("image_tower."):
        return None
    raise CheckpointError(f"cannot name {key!r} in the VideoGLaMM release: it is not a VideoGLaMM key")


def release_name_map(config: VideoGLaMMConfig) -> dict[str, str]:
    """Release key -> our key, for every tensor of the release parts of a model built from `config`."""
    out: dict[str, str] = {}
    for key in part_shapes(config, RELEASE_PARTS):
        name = release_name(key)
        if name is None:
            continue
        if name in out:  # would be a bug in the rules above, not in a checkpoint
            raise CheckpointError(f"{out[name]!r} and {key!r} would both be saved as {name!r}")
        out[name] = key
    return out


def release_drop_rules(config: VideoGLaMMConfig) -> dict[str, str]:
    """Named allow-list of release tensors the model never uses: the vision side of the InternVideo2 list.

    The release keeps only `vision_encoder.*` / `vision_proj.*` of the InternVideo2 file, so the text-side
    rules (BERT, `text_proj`, ...) are not carried over: such keys would be unexpected here.
    """
    return {
        re.escape(VIDEO_PREFIX) + pattern: reason
        for pattern, reason in iv2._drop_rules(config.video_tower).items()
        if pattern.startswith((r"vision_encoder\.", r"vision_proj\."))
    }


def check_vocabulary(
    config: VideoGLaMMConfig, release_config: Mapping[str, Any] | None, tokenizer: Any
) -> list[str]:
    """Check the release's vocabulary and `[SEG]` id against `config`; return what was checked (report notes).

    Args:
        config: the target config (`llm.vocab_size`, `tokens.seg_token_id`).
        release_config: the release's `config.json` as a dict (`vocab_size`, `seg_token_idx`), or None.
        tokenizer: the release's tokenizer (`len()`, `convert_tokens_to_ids`), or None.

    Raises:
        CheckpointError: the release disagrees with `config`.
    """
    vocab, seg = config.llm.vocab_size, config.tokens.seg_token_id
    found: list[tuple[str, str, int, int]] = []
    if release_config is not None:
        if "vocab_size" in release_config:
            got = int(release_config["vocab_size"])
            found.append(("config.json vocab_size", "llm.vocab_size", got, vocab))
        if "seg_token_idx" in release_config:
            got = int(release_config["seg_token_idx"])
            found.append(("config.json seg_token_idx", "tokens.seg_token_id", got, seg))
    if tokenizer is not None:
        found.append(("len(tokenizer)", "llm.vocab_size", len(tokenizer), vocab))
        found.append((f"tokenizer id of {SEG_TOKEN}", "tokens.seg_token_id",
                      int(tokenizer.convert_tokens_to_ids(SEG_TOKEN)), seg))
    bad = [f"{what} = {got}, but the config's {field} = {want}"
           for what, field, got, want in found if got != want]
    if bad:
        raise CheckpointError(
            "the release's vocabulary does not match the target config:\n  " + "\n  ".join(bad)
            + "\nconvert with a config whose llm.vocab_size and tokens.seg_token_id equal the release's"
        )
    return [f"{what} = {got} matches {field}" for what, field, got, _ in found]


class ReleaseConversion:
    """Converts the release piece by piece (whole, or shard by shard); see the module docstring.

    Args:
        config: the target config.
    """

    def __init__(self, config: VideoGLaMMConfig) -> None:
        self.config = config
        self.name_map = release_name_map(config)
        self.expected = part_shapes(config, RELEASE_PARTS)
        self.drop = release_drop_rules(config)
        inverse = {ours: name for name, ours in self.name_map.items()}
        self.source_names = inverse.__getitem__
        self.check = IncrementalCheck("videoglamm", self.expected, self.drop, source_names=self.source_names)

    def convert_whole(self, tensors: Mapping[str, Any]) -> tuple[dict[str, Any], ConversionReport]:
        """Rename the whole release at once; every problem is reported in one error (`check_conversion`)."""
        out, sources, leftover = map_names(tensors, self.name_map)
        whole = check_conversion("videoglamm", out, sources, leftover, self.expected, self.drop,
                                 source_names=self.source_names)
        return out, _per_part(whole)

    def add(self, tensors: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """Rename one piece of the release (same tensor objects) and check it (`IncrementalCheck.add`)."""
        out, sources, leftover = map_names(tensors, self.name_map)
        self.check.add(out, sources, leftover, where=where)
        return out

    def finish(self) -> ConversionReport:
        """After the last `add`: check that nothing is missing; return the report, split per model part."""
        return _per_part(self.check.finish())


def _per_part(whole: ConversionReport) -> ConversionReport:
    """The release report with one sub-report per model part (their own namespace prefixes)."""
    report = ConversionReport(kind="videoglamm", sources=whole.sources, dropped=whole.dropped)
    for part in RELEASE_PARTS:
        src_prefix, tgt_prefix = _PART_PREFIXES[part]
        sources = {k: v for k, v in whole.sources.items() if k.startswith(part + ".")}
        dropped = ({k: v for k, v in whole.dropped.items() if k.startswith(VIDEO_PREFIX)}
                   if part == "video_tower" else {})
        report.parts[part] = ConversionReport(
            kind=part, sources=sources, dropped=dropped, source_prefix=src_prefix, target_prefix=tgt_prefix,
        )
    return report


def to_official_release(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our full state dict -> release names (the same tensor objects). `image_tower.*` is left out: the
    release has no CLIP. Tensors the conversion dropped are not recreated.

    Raises:
        CheckpointError: a key is not a `VideoGLaMM` key.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        name = release_name(key)
        if name is not None:
            out[name] = value
    return out
