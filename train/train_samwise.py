"""Train SAMWISE's adapters, prompt MLP and CME on synthetic referring videos (accelerate, resumable).

    accelerate launch train/train_samwise.py configs/train/samwise_tiny_synthetic.yaml [--steps N]
        [--output-dir DIR] [--no-adapters] [key.path=value ...]
    accelerate launch train/train.py --config configs/train/samwise_tiny_synthetic.yaml [key.path=value ...]

(`train/train.py` hands any recipe whose `model.preset` is a SAMWISE preset to this script.)

Each sample is one (video, expression) pair; the clip is the whole synthetic video. The accelerate state
(model, optimizer, RNG) and the step count are saved to OUTPUT/checkpoint every `save_every` steps and
restored on restart; the final model is written with `save_pretrained` to OUTPUT/model.

`model.sam2_init` (optional) names trained SAM2 weights for the frozen SAM2 (a VideoGLaMM folder, the
shipped "videoglamm-tiny-synthetic", or a SAM2 state-dict file; see `videoglamm.samwise.sam2_init`).
A resumed run restores every weight from the checkpoint, so the init only matters for a fresh run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

if __name__ == "__main__":
    import _script_path  # noqa: F401  (train/ is sys.path[0]: put the repository root there instead)


def synthetic_pairs(num_videos: int, seed: int, num_frames: int, size: tuple[int, int]) -> list[dict[str, Any]]:
    """Every (video, expression) pair of a synthetic set: frames uint8 (T, H, W, 3), masks (T, H, W), kind."""
    from videoglamm.data.synthetic import generate_videos

    pairs = []
    for video in generate_videos(num_videos, seed, num_frames=num_frames, size=tuple(size)):
        frames = torch.from_numpy(video.frames)
        for exp in video.expressions:
            masks = torch.from_numpy(video.object_masks(int(exp["obj_id"])))
            pairs.append({"frames": frames, "masks": masks, "exp": exp["exp"], "kind": exp["kind"], "video": video.name})
    return pairs


def collate(model: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad-transform the clips and tokenize the expressions into a `SAMWISE.forward` batch.

    As the official training: the longer side to S (no `resize_short_side`), captions lower-cased.
    """
    from videoglamm.samwise.processing import pad_transform, tokenize_captions

    cfg = model.config
    views = [pad_transform(item["frames"], model.sam2.image_size, cfg.mean, cfg.std) for item in items]
    return {
        "pixel_values": torch.stack([v[0] for v in views]),
        "text": tokenize_captions(model.tokenizer, cfg, [item["exp"] for item in items], training=True),
        "valid_size": views[0][1],  # one frame size per synthetic set
        "target_masks": torch.stack([item["masks"] for item in items]).float(),
    }


# What the recipe's fields must be (the code reads them as such); checked before anything is built.
_RECIPE_TYPES: dict[str, dict[str, tuple[type, ...]]] = {
    "model": {"preset": (str,)},
    "data": {"num_videos": (int,), "seed": (int,), "num_frames": (int,), "size": (list, tuple)},
    "optim": {"lr": (int, float), "weight_decay": (int, float), "batch_size": (int,), "steps": (int,),
              "clip_grad_norm": (int, float)},
    "run": {"seed": (int,), "output_dir": (str,), "save_every": (int,), "log_every": (int,),
            "use_adapters": (bool,)},
}


def check_recipe(cfg: Any, source: str) -> None:
    """Refuse a SAMWISE recipe with a missing section or field of the wrong type, naming it.

    Raises:
        ConfigError: e.g. "optim.steps must be int, got 'two'".
    """
    from videoglamm.errors import ConfigError

    if not isinstance(cfg, dict):
        raise ConfigError(f"{source} does not hold a mapping")
    for section, fields in _RECIPE_TYPES.items():
        values = cfg.get(section)
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: missing section '{section}'")
        for name, types in fields.items():
            if name == "use_adapters" and name not in values:
                continue
            value = values.get(name)
            ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
            if not ok:
                raise ConfigError(f"{source}: {section}.{name} must be {' or '.join(t.__name__ for t in types)}, "
                                  f"got {value!r}")
            if types == (int,) and name not in ("seed",) and value < 1:
                raise ConfigError(f"{source}: {section}.{name} must be >= 1, got {value}")


def main(argv: list[str] | None = None) -> None:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from videoglamm.samwise.config import SAMWISEConfig
    from videoglamm.samwise.model import SAMWISE
    from videoglamm.samwise.sam2_init import load_sam2_weights

    from train.config import apply_overrides, read_recipe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--no-adapters", action="store_true", help="ablation: skip the CMT adapters")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides of the recipe (values are YAML)")
    args = parser.parse_args(argv)
    cfg = apply_overrides(read_recipe(args.config), args.overrides)
    check_recipe(cfg, args.config)
    run, optim, data = cfg["run"], cfg["optim"], cfg["data"]
    steps = args.steps if args.steps is not None else optim["steps"]
    out = Path(args.output_dir or run["output_dir"])
    use_adapters = run.get("use_adapters", True) and not args.no_adapters

    accelerator = Accelerator()
    set_seed(run["seed"])
    overrides = {k: dict(v) for k, v in cfg["model"].get("overrides", {}).items()}
    if not use_adapters:  # the ablation trains what is left: the prompt MLP and the CME
        overrides.setdefault("adapter", {})["enabled"] = False
    model = SAMWISE(SAMWISEConfig.from_preset(cfg["model"]["preset"], **overrides))
    if cfg["model"].get("sam2_init"):  # a SAM2 that already segments, as the released SAMWISE starts from
        load_sam2_weights(model, cfg["model"]["sam2_init"])
        accelerator.print(f"SAM2 initialised from {cfg['model']['sam2_init']} (frozen)")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=optim["lr"], weight_decay=optim["weight_decay"])
    model, optimizer = accelerator.prepare(model, optimizer)
    core = accelerator.unwrap_model(model)
    pairs = synthetic_pairs(data["num_videos"], data["seed"], data["num_frames"], data["size"])

    step, ckpt = 0, out / "checkpoint"
    if (ckpt / "step.json").is_file():
        accelerator.load_state(str(ckpt))
        step = json.loads((ckpt / "step.json").read_text())["step"]
        accelerator.print(f"resumed at step {step}")
    rng = random.Random(run["seed"] + step)
    model.train()
    while step < steps:
        batch = collate(core, rng.sample(pairs, optim["batch_size"]))
        output = model(batch["pixel_values"].to(accelerator.device), batch["text"], batch["valid_size"],
                       batch["target_masks"].to(accelerator.device))
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(output.loss)
        accelerator.clip_grad_norm_(params, optim["clip_grad_norm"])
        optimizer.step()
        step += 1
        if step % run["log_every"] == 0 or step == steps:
            accelerator.print(f"step {step} loss {output.loss.item():.4f} focal {output.focal_loss.item():.4f} "
                              f"dice {output.dice_loss.item():.4f} cme {output.cme_loss.item():.4f}")
        if step % run["save_every"] == 0 or step == steps:
            accelerator.save_state(str(ckpt))
            if accelerator.is_main_process:
                (ckpt / "step.json").write_text(json.dumps({"step": step}) + "\n")
    if accelerator.is_main_process:
        core.save_pretrained(out / "model")


if __name__ == "__main__":
    from videoglamm.cli.entry import run_script

    sys.exit(run_script("train_samwise.py", main))
