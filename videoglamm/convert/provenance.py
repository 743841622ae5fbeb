"""Model-card facts (`videoglamm.model_card.CardInfo`) for folders converted from the official checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from videoglamm.model_card import CardInfo

# The hub ids the official releases are built on (front matter `base_model`).
VIDEOGLAMM_BASES = ["MBZUAI/VideoGPT-plus_Phi3-mini-4k", "openai/clip-vit-large-patch14-336",
                    "OpenGVLab/InternVideo2-Stage2_1B-224p-f4", "facebook/sam2-hiera-large"]
SAMWISE_BASES = ["facebook/sam2-hiera-base-plus", "FacebookAI/roberta-base"]
UPSTREAM_LICENCE = ("Converted weights keep the licence of the official release they come from and of the "
                    "models it builds on; see the official repository")


def sources(files: list[Path], root: Path | None = None, hub: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """`CardInfo.sources` rows: a file's name (relative to `root`), size, and hub repo/revision when given."""
    rows = []
    for f in files:
        name = f.relative_to(root).as_posix() if root is not None and f.is_relative_to(root) else f.name
        rows.append({"file": name, "bytes": f.stat().st_size} | (hub or {}))
    return rows


def videoglamm_release(release: list[dict[str, Any]], clip: list[dict[str, Any]]) -> CardInfo:
    """The card facts of a folder converted from the VideoGLaMM HF export (`release`) and CLIP (`clip`) files."""
    return CardInfo(
        origin="converted", base_model=list(VIDEOGLAMM_BASES), license="other", license_name=UPSTREAM_LICENCE,
        license_link="https://github.com/mbzuai-oryx/VideoGLaMM", sources=release + clip,
        summary=("Converted by videoglamm (strict key mapping; tensors renamed, not changed) from the official "
                 "VideoGLaMM HF export and the HF CLIP ViT-L/14-336 weights it lacks."))


def samwise_release(files: list[dict[str, Any]]) -> CardInfo:
    """The card facts of a folder converted from an official SAMWISE checkpoint."""
    return CardInfo(
        origin="converted", base_model=list(SAMWISE_BASES), license="other", license_name=UPSTREAM_LICENCE,
        license_link="https://github.com/ClaudiaCuttano/SAMWISE", sources=files,
        summary=("Converted by videoglamm (strict key mapping; fairseq RoBERTa -> transformers, adapter layouts "
                 "re-expressed exactly) from an official SAMWISE checkpoint (`checkpoint['model']` of the "
                 "official main.py)."))
