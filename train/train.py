"""Train VideoGLaMM from a recipe.

    python train/train.py --config configs/train/tiny_synthetic.yaml [key.path=value ...] [--resume DIR|auto]

Multi-process (DDP, gloo on the CPU):
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \\
        --dynamo_backend no --main_process_port 29511 train/train.py --config ...
    torchrun --nproc_per_node 2 train/train.py --config ...
DeepSpeed ZeRO-2 (same launchers): add
    train.backend=deepspeed train.deepspeed_config=configs/deepspeed/zero2.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Iterator, Sequence

if __name__ == "__main__":
    import _script_path  # noqa: F401  (train/ is sys.path[0]: put the repository root there instead)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="recipe YAML (configs/train/*.yaml)")
    parser.add_argument("--resume", default=None, help="checkpoint folder, or 'auto' for the run's newest")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides of the recipe")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import os

    import torch

    from train.config import load_config
    from train.loop import Trainer

    args = parse_args(argv)
    if _is_samwise_recipe(args.config):
        return _train_samwise(args)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(int(os.environ.get("VIDEOGLAMM_TRAIN_THREADS", torch.get_num_threads())))
    cfg = load_config(args.config, args.overrides)
    with _removed_on_failure(Path(cfg.train.output_dir), rank):
        trainer = Trainer(cfg, resume=args.resume)
        try:
            summary = trainer.fit()
        finally:
            trainer.close()
    if rank == 0:
        from videoglamm.atomic import write_text

        write_text(Path(cfg.train.output_dir) / "summary.json", json.dumps(summary, indent=1) + "\n")
        print(json.dumps(summary))
    return 0


@contextlib.contextmanager
def _removed_on_failure(output_dir: Path, rank: int) -> Iterator[None]:
    """A run that fails before its first checkpoint removes the output folder it created (its `base/`,
    `metrics.jsonl` and `tensorboard/` are of no use without one); an existing run folder is kept."""
    from videoglamm.atomic import check_output_path

    from train.checkpoint import latest_checkpoint

    check_output_path(output_dir)
    existed = output_dir.exists()
    try:
        yield
    except BaseException:
        if rank == 0 and not existed and output_dir.is_dir() and latest_checkpoint(output_dir) is None:
            shutil.rmtree(output_dir, ignore_errors=True)
        raise


def _is_samwise_recipe(path: str) -> bool:
    """Whether a recipe trains SAMWISE (its `model.preset` is a SAMWISE preset)."""
    from videoglamm.samwise.config import SAMWISEConfig

    from train.config import read_recipe

    raw = read_recipe(path)
    preset = (raw.get("model") or {}).get("preset") if isinstance(raw, dict) else None
    return preset in SAMWISEConfig.presets


def _train_samwise(args: argparse.Namespace) -> int:
    """Run a SAMWISE recipe through `train/train_samwise.py` (it resumes from its own checkpoint)."""
    from train.train_samwise import main as samwise_main
    from videoglamm.errors import ConfigError

    if args.resume not in (None, "auto"):
        raise ConfigError("a SAMWISE run resumes from OUTPUT_DIR/checkpoint by itself; pass --resume auto or "
                          f"nothing, or set run.output_dir to the run to continue (got --resume {args.resume})")
    samwise_main([args.config, *args.overrides])
    return 0


if __name__ == "__main__":
    from videoglamm.cli.entry import run_script

    sys.exit(run_script("train.py", main))
