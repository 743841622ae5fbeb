"""Tiny checkpoints in the official on-disk layouts, and a Hugging Face hub cache laid out by hand.

The official layouts follow tests/data/checkpoint_keys/ (and its README in /work/shared/reference):
the VideoGLaMM HF export is sharded `pytorch_model-*.bin` files with `pytorch_model.bin.index.json`, its
`config.json` and the tokenizer files next to them, and no CLIP (that comes from the HF CLIP file, saved
under `vision_model.*`); a SAMWISE release is one legacy-format torch file `{"model", "epoch", "args"}`
whose state dict keys may start with `module.`. The hub cache is huggingface_hub's documented layout:
`models--ORG--NAME/{blobs/<hash>, snapshots/<commit>/<path> -> ../../blobs/<hash>, refs/<branch>}`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

TINY_TOKENIZER = Path(__file__).parents[1] / "videoglamm" / "assets" / "tokenizers" / "videoglamm-tiny"
LLM_PREFIXES = ("model.layers.", "model.embed_tokens.", "model.norm.", "lm_head.")  # Phi-3 names


def randomize_(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def tiny_videoglamm_release(config, root: Path, with_tokenizer: bool = False):
    """A random tiny VideoGLaMM and its official files under `root`: `release/` (2 shards) and `clip.bin`.

    Returns:
        (the model, `root`).
    """
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from videoglamm.convert import to_official
    from videoglamm.convert.clip import convert_clip_hf
    from videoglamm.modeling.videoglamm import VideoGLaMM

    it = config.image_tower
    torch.manual_seed(0)
    hf_clip = CLIPVisionModel(CLIPVisionConfig(
        hidden_size=it.width, intermediate_size=int(it.width * it.mlp_ratio), num_hidden_layers=it.layers,
        num_attention_heads=it.heads, image_size=it.image_size, patch_size=it.patch_size,
        hidden_act="quick_gelu", layer_norm_eps=1e-5))
    randomize_(hf_clip, 1)
    clip = {f"vision_model.{k}": v for k, v in hf_clip.state_dict().items()}  # the hub file's names
    model = VideoGLaMM(config).eval()
    randomize_(model, 2)
    model.image_tower.load_state_dict(convert_clip_hf(clip, it), strict=True)

    release = to_official("videoglamm", model.state_dict())
    llm = [k for k in release if k.startswith(LLM_PREFIXES)]
    rest = [k for k in release if k not in llm]
    src = root / "release"
    src.mkdir(parents=True)
    weight_map = {}
    # Both shards hold LLM and non-LLM tensors, as the release's shards may.
    halves = ((llm[: len(llm) // 2], rest[: len(rest) // 2]), (llm[len(llm) // 2:], rest[len(rest) // 2:]))
    for i, chunk in enumerate(a + b for a, b in halves):
        name = f"pytorch_model-0000{i + 1}-of-00002.bin"
        torch.save({k: release[k].clone() for k in chunk}, src / name)
        weight_map.update({k: name for k in chunk})
    (src / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (src / "config.json").write_text(json.dumps({"vocab_size": config.llm.vocab_size,
                                                 "seg_token_idx": config.tokens.seg_token_id}))
    if with_tokenizer:
        for f in TINY_TOKENIZER.iterdir():
            shutil.copy(f, src / f.name)
    torch.save(clip, root / "clip.bin")
    return model, root


def tiny_samwise_release(path: Path, preset: str = "samwise-tiny"):
    """A random tiny SAMWISE saved as the official `main.py` does (legacy format, `module.` keys, `args`)."""
    from videoglamm.convert.samwise import to_official_samwise
    from videoglamm.samwise.config import SAMWISEConfig
    from videoglamm.samwise.model import SAMWISE

    torch.manual_seed(0)
    model = SAMWISE(SAMWISEConfig.from_preset(preset)).eval()
    randomize_(model, 3)
    with torch.no_grad():  # fairseq RoBERTa has no token types: they convert to zeros
        model.text_encoder.embeddings.token_type_embeddings.weight.zero_()
    official = {f"module.{k}": v for k, v in to_official_samwise(model.state_dict()).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": official, "epoch": 5, "args": argparse.Namespace(lr=1e-5, HSA=True)}, path,
               _use_new_zipfile_serialization=False)
    return model


def hub_cache(cache_dir: Path, repo_id: str, folder: Path, branch: str = "main") -> str:
    """Lay `folder` out as the hub snapshot of `repo_id` in `cache_dir`; return the commit hash."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    commit = hashlib.sha1("".join(digests[p] + p.relative_to(folder).as_posix() for p in files).encode()).hexdigest()
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for path, digest in digests.items():
        blob = repo / "blobs" / digest
        if not blob.exists():
            shutil.copy(path, blob)
        link = repo / "snapshots" / commit / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / branch).write_text(commit)
    return commit
