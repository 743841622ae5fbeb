"""CLIP image tower: a frozen `open_clip` VisionTransformer returning intermediate patch features.

VideoGLaMM (like LLaVA and VideoGPT+) feeds the LLM the patch tokens of the penultimate block
(`hidden_states[-2]` in transformers' convention) with CLS dropped and no final norm. All blocks and
`ln_post` are kept so the released CLIP weights load strictly; the blocks after the selected one are
simply not run. The joint-space projection `proj` is removed: it exists only in CLIPModel/open_clip
files (not in `CLIPVisionModel`) and nothing here uses it; the converters drop it by name.
"""

from __future__ import annotations

import torch
from open_clip.transformer import LayerNorm, QuickGELU, VisionTransformer
from torch import nn

from videoglamm.config import ImageTowerConfig
from videoglamm.errors import ShapeMismatchError


class ImageTower(nn.Module):
    """Frozen CLIP ViT. The open_clip module is `self.model`, so keys are `model.<open_clip visual key>`.

    Args:
        config: the `ImageTowerConfig`.
    """

    def __init__(self, config: ImageTowerConfig) -> None:
        super().__init__()
        self.config = config
        self.model = VisionTransformer(
            image_size=config.image_size,
            patch_size=config.patch_size,
            width=config.width,
            layers=config.layers,
            heads=config.heads,
            mlp_ratio=config.mlp_ratio,
            output_dim=config.output_dim,
            act_layer=QuickGELU if config.quick_gelu else nn.GELU,
            norm_layer=LayerNorm,  # eps 1e-5, as CLIP
        )
        # open_clip skips the projection when it is None; removing it keeps the key set equal to
        # transformers' CLIPVisionModel, which has no projection.
        self.model.proj = None
        self.requires_grad_(False)

    @property
    def feature_block_index(self) -> int:
        """0-based index of the block whose output is returned."""
        return self.config.num_blocks_used - 1

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Patch features of the selected block.

        Args:
            pixel_values: (N, 3, S, S) CLIP-normalised images, S = `image_size`.

        Returns:
            (N, grid*grid, width) patch tokens (CLS dropped, no `ln_post`) of block `feature_layer`.

        Raises:
            ShapeMismatchError: `pixel_values` is not (N, 3, image_size, image_size).
        """
        s = self.config.image_size
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != (3, s, s):
            raise ShapeMismatchError(
                f"image tower expects pixel_values of shape (N, 3, {s}, {s}), got {tuple(pixel_values.shape)}"
            )
        out = self.model.forward_intermediates(
            pixel_values.to(self.model.conv1.weight.dtype),
            indices=[self.feature_block_index],
            stop_early=True,  # later blocks are not run
            normalize_intermediates=False,
            intermediates_only=True,
            output_fmt="NLC",
        )
        return out["image_intermediates"][0]


def build_image_tower(cfg: ImageTowerConfig) -> ImageTower:
    """Build the frozen CLIP image tower (random weights; load them with a converter).

    Args:
        cfg: the `ImageTowerConfig`.

    Returns:
        An `ImageTower` with all `cfg.layers` blocks, every parameter frozen.
    """
    return ImageTower(cfg)
