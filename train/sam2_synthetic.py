"""Pretrain a tiny SAM2 on the synthetic shapes as a promptable segmenter (the tiny stand-in for SAM 2's
own pretraining).

    python train/sam2_synthetic.py --config configs/train/tiny_synthetic.yaml \
        --out runs/sam2_synthetic/sam2.pt [--steps 2500]

SAMWISE freezes its SAM2, so it must start from one that already segments whatever its prompt token
designates; the released models start from SAM 2, which no one has pretrained at the tiny size. This
script gives the tiny SAM2 that ability on frames of the synthetic training videos: its image encoder
and mask decoder learn to segment the object named by a prompt token, one learned token per
(colour, shape) concept, with the recipe's mask loss (`loss.bce_weight` x BCE + `loss.dice_weight` x
Dice on frame-size masks). The concept tokens are then discarded and the SAM2 weights written in the
official checkpoint format (`{"model": state_dict}`), which `model.sam2_init` of a SAMWISE recipe and
`model.sam2_weights` of a VideoGLaMM recipe accept.

The architecture and the synthetic set come from the VideoGLaMM recipe given (`model` and
`data.synthetic[0]`), so the weights fit the SAM2 it builds (the same tiny Hiera as samwise-tiny at the
same `sam2.image_size`). Every `--eval-every` steps the held-out frames (seed 1000) are scored: mean IoU
per number of visible objects, and the fraction of target-absent frames predicted empty.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Sequence

if __name__ == "__main__":
    import _script_path  # noqa: F401  (train/ is sys.path[0]: put the repository root there instead)

import numpy as np
import torch

HELD_OUT_SEED = 1000


def concept_index(colour: str, shape: str) -> int:
    """Index of the (colour, shape) concept token."""
    from videoglamm.data.synthetic import COLOURS, SHAPES

    return list(COLOURS).index(colour) * len(SHAPES) + SHAPES.index(shape)


def sample_batch(seed: int, num_videos: int, rng: np.random.Generator, videos: int, frames: int,
                 num_frames: int, size: tuple[int, int]) -> tuple[np.ndarray, list[int], np.ndarray, list[int]]:
    """`videos` random videos of set (`seed`, 0..num_videos-1), `frames` random frames each, one random object
    per frame: uint8 frames (N, H, W, 3), concept indices, bool target masks (N, H, W) and the number of
    visible objects per frame (-1 where the target is absent)."""
    from videoglamm.data.synthetic import generate_video

    images, concepts, targets, visible = [], [], [], []
    for index in rng.choice(num_videos, videos, replace=videos > num_videos):
        video = generate_video(seed, int(index), num_frames=num_frames, size=size)
        for t in rng.choice(num_frames, frames, replace=frames > num_frames):
            obj = video.objects[int(rng.integers(len(video.objects)))]
            target = video.labels[t] == obj.obj_id
            images.append(video.frames[t])
            concepts.append(concept_index(obj.colour, obj.shape))
            targets.append(target)
            visible.append(len(np.unique(video.labels[t])) - 1 if target.any() else -1)
    return np.stack(images), concepts, np.stack(targets), visible


class ConceptSegmenter(torch.nn.Module):
    """A `SAM2MaskDecoder` prompted by one learned token per concept."""

    def __init__(self, sam2_cfg, mean: Sequence[float], std: Sequence[float], num_concepts: int) -> None:
        super().__init__()
        from videoglamm.modeling.mask_decoder import build_mask_decoder

        self.sam = build_mask_decoder(sam2_cfg)
        self.concepts = torch.nn.Embedding(num_concepts, self.sam.hidden_dim)
        self.mean, self.std = tuple(mean), tuple(std)

    def forward(self, images: np.ndarray, concepts: list[int]) -> torch.Tensor:
        """Mask logits (N, H, W) at the frames' size."""
        from videoglamm.processing.transforms import sam2_transform

        pixels = sam2_transform(torch.from_numpy(images), self.sam.image_size, self.mean, self.std)
        prompts = self.concepts(torch.tensor(concepts))[:, None]
        out = self.sam.decode(self.sam.encode_frames(pixels), prompts)
        return self.sam.upsample(out.mask_logits[:, 0], tuple(images.shape[1:3]))


def mask_loss(logits: torch.Tensor, targets: torch.Tensor, bce_weight: float, dice_weight: float) -> torch.Tensor:
    """`bce_weight` x BCE + `dice_weight` x Dice, averaged over the masks (the recipe's mask loss)."""
    from videoglamm.modeling.losses import mask_bce, mask_dice

    return bce_weight * mask_bce(logits, targets) + dice_weight * mask_dice(logits, targets)


@torch.no_grad()
def held_out_report(model: ConceptSegmenter, batches: int, num_frames: int, size: tuple[int, int]) -> str:
    """Mean IoU on held-out frames by number of visible objects, and how often an absent target is empty."""
    was_training = model.training
    model.eval()
    ious, absent_empty, visible_all = [], [], []
    for b in range(batches):
        rng = np.random.default_rng([HELD_OUT_SEED, b])
        images, concepts, targets, visible = sample_batch(HELD_OUT_SEED, 10_000, rng, 4, 2, num_frames, size)
        pred = (model(images, concepts) > 0).numpy()
        for p, t, v in zip(pred, targets, visible):
            if v < 0:
                absent_empty.append(not p.any())
            else:
                ious.append((p & t).sum() / max((p | t).sum(), 1))
                visible_all.append(v)
    model.train(was_training)
    ious, visible_all = np.array(ious), np.array(visible_all)
    parts = [f"mIoU {ious.mean():.3f}"]
    parts += [f"{k} obj {ious[visible_all == k].mean():.3f}" for k in (1, 2, 3) if (visible_all == k).any()]
    if absent_empty:
        parts.append(f"absent->empty {np.mean(absent_empty):.2f}")
    return ", ".join(parts)


def save_sam2(model: ConceptSegmenter, out: Path) -> None:
    """Write the SAM2 weights as an official SAM2 checkpoint, atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    torch.save({"model": model.sam.model.state_dict()}, tmp)
    os.replace(tmp, out)


def main(argv: Sequence[str] | None = None) -> int:
    from tqdm import tqdm

    from train.config import load_config, model_config
    from videoglamm.data.synthetic import COLOURS, SHAPES
    from videoglamm.errors import ConfigError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the VideoGLaMM recipe whose SAM2 this pretrains")
    parser.add_argument("--out", default=None, help="checkpoint path (default: the recipe's model.sam2_weights)")
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--videos-per-step", type=int, default=4)
    parser.add_argument("--frames-per-video", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cfg = load_config(args.config)
    if not cfg.data.synthetic:
        raise ConfigError(f"{args.config} has no data.synthetic entry to pretrain on")
    target = args.out or cfg.model.sam2_weights
    if not target:
        raise ConfigError("give --out or set model.sam2_weights in the recipe")
    out = Path(target)
    data = cfg.data.synthetic[0]
    config = model_config(cfg.model)
    torch.manual_seed(args.seed)
    model = ConceptSegmenter(config.sam2, config.video_tower.mean, config.video_tower.std, len(COLOURS) * len(SHAPES))
    model.sam.model.requires_grad_(True)  # everything trains here, whatever the recipe does in stage 1
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, betas=tuple(cfg.optim.betas), weight_decay=0.0)
    rng = np.random.default_rng(args.seed)
    size = tuple(data.size)
    start = time.perf_counter()
    bar = tqdm(range(1, args.steps + 1), desc="sam2 pretrain")
    for step in bar:
        images, concepts, targets, _ = sample_batch(data.seed, data.videos, rng, args.videos_per_step,
                                                    args.frames_per_video, data.frames, size)
        loss = mask_loss(model(images, concepts), torch.from_numpy(targets).float(),
                         config.loss.bce_weight, config.loss.dice_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % args.eval_every == 0 or step == args.steps:
            tqdm.write(f"step {step} ({time.perf_counter() - start:.0f} s): held-out "
                       f"{held_out_report(model, 8, data.frames, size)}")
    save_sam2(model, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    from videoglamm.cli.entry import run_script

    sys.exit(run_script("sam2_synthetic.py", main))
