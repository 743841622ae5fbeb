"""The training loop: micro-batches -> accumulated gradients -> one clipped AdamW step (or a skipped one).

A window whose loss is non-finite on any rank is skipped by every rank together: no update, no
scheduler step, gradients dropped, and the skip is counted, logged and limited by
`train.max_skipped_steps`. Data position, step and RNG states go into every checkpoint, so a resumed
run continues with the exact batches and random draws of an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from videoglamm.data.collate import SampleCollator
from videoglamm.errors import CheckpointError, TrainingError
from videoglamm.modeling.finetune import run_writes_base

from train.backends import build_backend
from train.checkpoint import read_state, resolve_resume, save_checkpoint, set_rng_state
from train.config import TrainConfig
from train.data import Batches, ensure_synthetic
from train.model import build_model, prepare_for_training

logger = logging.getLogger("train")
LOGGED = ("loss", "lm_loss", "bce", "dice")


def _check_same_weights(model: torch.nn.Module, base: Path) -> None:
    """Resuming a random-init run: the seed must rebuild exactly the weights saved in `base/`.

    Raises:
        CheckpointError: base/ is missing or differs (the library's initialisation changed since).
    """
    from videoglamm.modeling.videoglamm import VideoGLaMM

    if not (base / "config.json").is_file():
        raise CheckpointError(f"cannot resume: the run's base model {base} is missing")
    saved = VideoGLaMM.from_pretrained(base).state_dict()
    now = model.state_dict()
    differ = [k for k in now if k not in saved or not torch.equal(now[k], saved[k])]
    if differ or set(saved) != set(now):
        raise CheckpointError(f"the seed no longer rebuilds the base model in {base} ({len(differ)} tensors "
                              f"differ, "
                              f"e.g. {differ[:3]}); resume with the library version that started the run")


class Trainer:
    """Builds everything a recipe describes and runs it.

    Args:
        cfg: the recipe.
        resume: None, "auto" or a checkpoint folder.
    """

    def __init__(self, cfg: TrainConfig, resume: str | None = None) -> None:
        self.cfg = cfg
        self.output_dir = Path(cfg.train.output_dir)
        self.resume_dir = resolve_resume(resume, self.output_dir)
        env_rank = int(os.environ.get("RANK", "0"))
        base = self.output_dir / "base"
        # A random-init model is rebuilt from the seed even on resume, not loaded from base/: tensors
        # allocated the same way keep the arithmetic bit-identical to an uninterrupted run.
        self.model = build_model(cfg.model, cfg.train.seed)
        if run_writes_base(cfg.model.weights, cfg.model.sam2_weights, cfg.model.llm_weights):
            if self.resume_dir is not None:
                _check_same_weights(self.model, base)
            elif env_rank == 0:  # export needs the frozen parts of a model that exists nowhere else
                self.model.save_pretrained(base)
        if env_rank == 0:
            for entry in cfg.data.synthetic:
                ensure_synthetic(entry)
        self.model.train()
        prepare_for_training(self.model, cfg.model)
        self.backend = build_backend(self.model, cfg.optim, cfg.train)
        self.backend.barrier()  # base model and synthetic data are written
        self.batches = Batches(cfg.data, SampleCollator(self.model.processor), cfg.train.micro_batch_size,
                               self.backend.rank, self.backend.world_size)
        self.step, self.skipped, self.seen = 0, 0, 0
        if self.resume_dir is not None:
            self._resume(self.resume_dir)

    @property
    def is_main(self) -> bool:
        return self.backend.rank == 0

    # -- checkpoints -------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"step": self.step, "skipped": self.skipped, "seen": self.seen,
                "sampler": self.batches.state_dict(), "recipe": self.cfg.to_dict()}

    def save(self) -> Path:
        return save_checkpoint(self.backend, self.output_dir, self.step, self._state(),
                               self.cfg.train.keep_last)

    def _resume(self, folder: Path) -> None:
        from videoglamm.modeling.finetune import load_trainable

        state = read_state(folder)
        if state["world_size"] != self.backend.world_size:
            raise CheckpointError(f"{folder} was written by {state['world_size']} processes; resume with the "
                                  f"same number (now {self.backend.world_size}) so the data order is kept")
        if state["recipe"]["model"] != self.cfg.to_dict()["model"]:
            raise CheckpointError(f"{folder} was written with another model section; resume with its recipe")
        if self.cfg.train.backend == "accelerate":
            load_trainable(self.model, folder)
        self.backend.load_state(folder)
        self.batches.load_state_dict(state["sampler"][self.backend.rank])
        self.step, self.skipped, self.seen = state["step"], state["skipped"], state["seen"]
        set_rng_state(torch.load(folder / f"rng_rank{self.backend.rank}.pt", weights_only=True))
        logger.info("resumed from %s at step %d", folder, self.step)

    # -- loop --------------------------------------------------------------------------------------
    def _window(self) -> tuple[torch.Tensor, int]:
        """Forward/backward of one accumulation window; returns summed (loss, lm, bce, dice) and the
        number of non-finite losses on this rank."""
        accum = self.cfg.train.grad_accum
        sums, nonfinite = torch.zeros(len(LOGGED), dtype=torch.float64), 0
        for micro in range(accum):
            batch = self.batches.next_batch()
            with self.backend.micro_step(last=micro == accum - 1):
                out = self.backend.forward(batch)
                # Backward even a non-finite loss: every rank must reach the same collectives. The
                # window's gradients are then dropped by the skip.
                self.backend.backward(out.loss)
            values = [out.loss, out.lm_loss, out.mask_bce_loss, out.mask_dice_loss]
            sums += torch.tensor([float(v.detach()) if v is not None else 0.0 for v in values],
                                 dtype=torch.float64)
            nonfinite += int(not torch.isfinite(out.loss.detach()).all())
            self.seen += batch["input_ids"].shape[0]
        return sums, nonfinite

    def fit(self) -> dict[str, Any]:
        """Train to `train.max_steps`, checkpointing every `train.save_every` steps and at the end.

        Returns:
            Summary: final step, skipped steps, bad samples, last logged values, wall time.

        Raises:
            TrainingError: more than `train.max_skipped_steps` windows had a non-finite loss.
            DatasetError: a reader's bad-sample fraction went past `data.max_bad_fraction`.
        """
        from tqdm import tqdm

        tc = self.cfg.train
        tracker = self._tracker() if self.is_main else None
        bar = tqdm(total=tc.max_steps, initial=self.step, disable=not (self.is_main and tc.progress),
                   desc="train")
        start, window_start, last = time.time(), time.time(), {}
        acc = torch.zeros(len(LOGGED), dtype=torch.float64)
        while self.step < tc.max_steps:
            sums, nonfinite = self._window()
            acc += sums / tc.grad_accum
            bad_window = float(self.backend.all_reduce(torch.tensor([float(nonfinite)]), "sum")) > 0
            if bad_window:
                self.backend.skip()
                self.skipped += 1
                logger.warning("step %d: non-finite loss on some rank; update skipped (%d skipped so far)",
                               self.step + 1, self.skipped)
                if self.skipped > tc.max_skipped_steps:
                    raise TrainingError(f"{self.skipped} steps had a non-finite loss, more than "
                                        f"train.max_skipped_steps={tc.max_skipped_steps}; lower optim.lr, "
                                        "check the data, or use fp32")
            else:
                frozen = [prefix for prefix, until in tc.freeze_until.items() if self.step < until]
                if frozen:
                    self.backend.drop_grads(frozen)
                last["grad_norm"] = self.backend.step()
            self.step += 1
            bar.update(1)
            if self.step % tc.log_every == 0 or self.step == tc.max_steps:
                last.update(self._log(acc, window_start, tracker))
                bar.set_postfix(loss=f"{last['loss']:.3f}", lr=f"{last['lr']:.2e}")
                acc.zero_()
                window_start = time.time()
            if self.step % tc.save_every == 0 or self.step == tc.max_steps:
                self.save()
        bar.close()
        if tracker is not None:
            tracker.finish()
        bad = int(self.backend.all_reduce(torch.tensor([float(self.batches.bad_samples())]), "sum"))
        return {"step": self.step, "skipped": self.skipped, "bad_samples": bad, "last": last,
                "seconds": time.time() - start}

    def _log(self, acc: torch.Tensor, window_start: float, tracker: Any) -> dict[str, float]:
        tc = self.cfg.train
        steps = tc.log_every if self.step % tc.log_every == 0 else self.step % tc.log_every
        mean = self.backend.all_reduce(acc.float() / steps, "mean")
        elapsed = max(time.time() - window_start, 1e-9)
        values = {name: float(v) for name, v in zip(LOGGED, mean)}
        samples = steps * tc.micro_batch_size * tc.grad_accum * self.backend.world_size
        bad = self.backend.all_reduce(torch.tensor([float(self.batches.bad_samples())]), "sum")
        values.update(lr=self.backend.lr(), skipped_steps=float(self.skipped),
                      samples_per_second=samples / elapsed, bad_samples=float(bad))
        if tracker is not None:
            tracker.log({f"train/{k}": v for k, v in values.items()}, step=self.step)
            # A plain-text twin of the tensorboard scalars, for scripts and tests.
            with open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": self.step, **values}) + "\n")
            logger.info("step %d %s", self.step, " ".join(f"{k}={v:.4g}" for k, v in values.items()))
        return values

    def _tracker(self) -> Any:
        from accelerate.tracking import TensorBoardTracker

        tracker = TensorBoardTracker("tensorboard", self.output_dir)
        tracker.start()
        flat = {}
        for section, values in self.cfg.to_dict().items():
            if isinstance(values, dict):
                flat.update({f"{section}.{k}": v for k, v in values.items()
                             if isinstance(v, (int, float, str, bool))})
        tracker.store_init_configuration(flat)
        return tracker

    def close(self) -> None:
        self.backend.close()
