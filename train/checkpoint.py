"""Training checkpoints: written atomically, the last `keep_last` kept, resumable exactly.

    OUTPUT/base/                       the model before training (save_pretrained), when it was random
    OUTPUT/checkpoints/step_00000200/
        trainable.safetensors          every trainable tensor, unsharded (what `videoglamm export` reads)
        optimizer.pt, scheduler.pt     (accelerate) or deepspeed/ (the engine's own files)
        rng_rank{r}.pt                 python, numpy and torch RNG states of each rank
        trainer_state.json             step, per-rank sampler states, counters, the recipe

Every rank writes into `.step_X.tmp`, then rank 0 renames it to `step_X`: a folder named `step_*`
is always complete, so `--resume auto` takes the newest one.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videoglamm.errors import CheckpointError
from videoglamm.modeling.finetune import STATE_FILE, TRAINABLE_FILE, read_trainer_state


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])


def save_checkpoint(backend: Any, output_dir: str | Path, step: int, state: dict[str, Any],
                    keep_last: int) -> Path:
    """Write one checkpoint (collective: every rank calls it).

    Args:
        backend: the training backend (optimizer, scheduler, collectives).
        output_dir: the run's folder.
        step: optimizer steps done.
        state: JSON-able trainer state of this rank (its sampler state is gathered to rank 0).
        keep_last: how many `step_*` folders to keep.

    Returns:
        The final folder.
    """
    from safetensors.torch import save_file

    root = checkpoint_root(output_dir)
    final = root / f"step_{step:08d}"
    tmp = root / f".step_{step:08d}.tmp"
    if backend.rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed while writing
        tmp.mkdir(parents=True)
    backend.barrier()
    trainable = backend.gather_trainable()
    backend.save_state(tmp)
    torch.save(rng_state(), tmp / f"rng_rank{backend.rank}.pt")
    (tmp / f"state_rank{backend.rank}.json").write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    backend.barrier()
    if backend.rank == 0:
        save_file(trainable, tmp / TRAINABLE_FILE, metadata={"format": "pt"})
        ranks = [json.loads((tmp / f"state_rank{r}.json").read_text()) for r in range(backend.world_size)]
        merged = dict(ranks[0], sampler=[r["sampler"] for r in ranks], world_size=backend.world_size)
        (tmp / STATE_FILE).write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
        for r in range(backend.world_size):
            (tmp / f"state_rank{r}.json").unlink()
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in sorted(root.glob("step_*"))[:-keep_last]:
            shutil.rmtree(old)
    backend.barrier()
    return final


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = sorted(p for p in checkpoint_root(output_dir).glob("step_*") if (p / STATE_FILE).is_file())
    return found[-1] if found else None


def resolve_resume(resume: str | None, output_dir: str | Path) -> Path | None:
    """`--resume DIR|auto` -> a checkpoint folder (None to start fresh; `auto` with none found starts fresh).

    Raises:
        CheckpointError: an explicit folder that is not a complete checkpoint.
    """
    if resume is None:
        return None
    if resume == "auto":
        return latest_checkpoint(output_dir)
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(f"{path} is not a training checkpoint (no {STATE_FILE}); pass a "
                              f"{checkpoint_root(output_dir)}/step_* folder or --resume auto")
    return path


def read_state(folder: Path) -> dict[str, Any]:
    return read_trainer_state(folder)
