"""Convert the VideoGLaMM release on disk into a `VideoGLaMM.from_pretrained` folder, shard by shard.

The release is about 5 B parameters (10 GB in float16) in sharded `pytorch_model-*.bin` files. Peak memory
is one source shard (memory-mapped when it is a zip-format `.bin`) plus CLIP at the start, never two copies of
the model: each shard is read, renamed (the same tensor objects, or one cast copy with `dtype`), checked
against the model's key/shape table (`IncrementalCheck`), written out by `FolderWriter`, and released before
the next shard is read. Missing keys are reported after the last shard. The output folder appears only when
complete (`atomic_dir`).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from videoglamm.config import InferenceConfig, VideoGLaMMConfig
from videoglamm.convert import provenance
from videoglamm.convert._strict import ConversionReport
from videoglamm.convert.checkpoint_io import list_shards, load_all, load_shard
from videoglamm.convert.folder_writer import FolderWriter
from videoglamm.convert.official import DEFAULT_PRESET, convert_image_tower_hf
from videoglamm.convert.parts import part_shapes
from videoglamm.convert.videoglamm_release import ReleaseConversion, check_vocabulary
from videoglamm.errors import CheckpointError
from videoglamm.model_card import videoglamm_card
from videoglamm.modeling.persistence import atomic_dir

logger = logging.getLogger(__name__)


def _release_config(src: Path) -> dict[str, Any] | None:
    path = src / "config.json"
    return json.loads(path.read_text()) if src.is_dir() and path.is_file() else None


def _tokenizer(tokenizer: str | os.PathLike | None, src: Path) -> Any:
    """The tokenizer from `tokenizer`, else the one saved next to the release, else an error. A sentencepiece
    Llama tokenizer loads slow, as the official's (see `load_tokenizer`)."""
    from videoglamm.processing.processor import load_tokenizer

    candidates = [Path(tokenizer)] if tokenizer is not None else [src] if src.is_dir() else []
    for path in candidates:
        if (path / "tokenizer_config.json").is_file():
            return load_tokenizer(path)
    where = tokenizer if tokenizer is not None else src
    raise CheckpointError(
        f"no tokenizer in {where} (no tokenizer_config.json): pass --tokenizer <folder with the release's "
        "tokenizer files>; from_pretrained needs it, and it is how the [SEG] id is checked"
    )


def convert_release_folder(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    clip: str | os.PathLike,
    tokenizer: str | os.PathLike | None = None,
    dtype: torch.dtype | None = None,
    config: VideoGLaMMConfig | None = None,
    progress: bool = True,
    hub: dict[str, str] | None = None,
) -> ConversionReport:
    """Convert the release at `src` (+ CLIP at `clip`) into the folder `dst` that `from_pretrained` loads.

    Args:
        src: the release folder (shard index JSON, or one weights file), or one weights file.
        dst: the output folder (replaced atomically when complete).
        clip: the HF `openai/clip-vit-large-patch14-336` weights (file or folder).
        tokenizer: folder with the release's tokenizer (default: `src` when it has one).
        dtype: cast every tensor (default: keep each tensor's dtype).
        config: the target config (default: the "videoglamm-phi3-mini" preset).
        progress: show a progress bar over the shards.
        hub: {"repo", "revision"} when `src` is a hub snapshot (recorded in the model card).

    The output config gets the official inference defaults (`InferenceConfig()`), and README.md names
    the source files (`convert.provenance`).

    Returns:
        The `ConversionReport` (per part: mapped / renamed / dropped).

    Raises:
        CheckpointError: missing files or tokenizer, a vocabulary / `[SEG]` mismatch, or missing, unexpected
            or wrongly shaped keys (named, with the shard they came from).
    """
    from tqdm.auto import tqdm

    from videoglamm.processing.processor import VideoGLaMMProcessor

    cfg = copy.deepcopy(config if config is not None else VideoGLaMMConfig.from_preset(DEFAULT_PRESET))
    cfg.inference = InferenceConfig()  # the official inference, whatever the target preset's defaults
    src = Path(src)
    shards = list_shards(src)
    tok = _tokenizer(tokenizer, src)
    checked = check_vocabulary(cfg, _release_config(src), tok)  # before any heavy work
    clip_shards = list_shards(clip)  # fail on a wrong path before reading the release
    conversion = ReleaseConversion(cfg)

    tmp, commit = atomic_dir(Path(dst))
    try:
        writer = FolderWriter(tmp, dtype)
        clip_out, clip_report = convert_image_tower_hf(load_all(clip), cfg)
        writer.write(clip_out)
        del clip_out
        for shard in tqdm(shards, desc="converting shards", unit="shard", disable=not progress):
            tensors = load_shard(shard)
            writer.write(conversion.add(tensors, where=shard.path.name))
            del tensors  # the shard's memory (or mapping) goes before the next one is read
        report = conversion.finish()
        writer.finish(cfg)
        VideoGLaMMProcessor(cfg, tok).save_pretrained(tmp)
        release_files = sorted(p for p in src.iterdir() if p.is_file()) if src.is_dir() else [src]
        info = provenance.videoglamm_release(provenance.sources(release_files, src.parent if src.is_file() else src, hub),
                                             provenance.sources([s.path for s in clip_shards]))
        videoglamm_card(tmp, cfg, sum(math.prod(shape) for shape in part_shapes(cfg).values()), info,
                        title=Path(dst).name)
        commit()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.sources.update(clip_report.sources)
    report.dropped.update(clip_report.dropped)
    report.parts = {"image_tower": clip_report, **report.parts}
    report.notes = checked
    return report
