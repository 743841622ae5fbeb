"""How a step is distributed: `AccelerateBackend` (DDP through accelerate, gloo on the CPU) or
`DeepSpeedBackend` (a DeepSpeed ZeRO-2/3 engine driven directly).

Why not accelerate's DeepSpeed plugin: in accelerate 1.15 `AcceleratorState.__init__` takes the
DeepSpeed branch only `if not cpu` (both where it calls `deepspeed.init_distributed` and where it sets
`DistributedType.DEEPSPEED`), and with `cpu=False` on a machine without an accelerator
`_prepare_backend` finds no device backend. So on a CPU the plugin is silently bypassed: the state
reported one process and the DeepSpeed-specific `gather` then crashed (reference/environment.md).
Driving `deepspeed.initialize` ourselves works the same under torchrun, `accelerate launch` and the
`deepspeed` launcher, on CPU (gloo) and GPU alike.

ZeRO-3: SAM2Base's directly held parameters (`no_mem_embed`, ...) are read by the SAM2 wrapper outside
any module forward, where ZeRO-3 would hand them over partitioned (empty); they are registered as external
parameters of the top module (`sam2_direct_parameters`), which works while they are frozen: every recipe
but `sam2.train_all` (ConfigError under ZeRO-3; use ZeRO-2 there). `tests/test_train_distributed.py` runs
2 steps on 2 processes and finds ZeRO-2's losses and weights.

Both backends expose the same small interface to the loop: forward, backward (scaled by the
accumulation), step (clip, update, schedule) or skip (drop the window's gradients), collectives,
and save/load of the optimizer and scheduler.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import torch

from videoglamm.errors import ConfigError, TrainingError

from train.config import OptimSection, TrainSection
from train.schedule import build_optimizer, build_scheduler


def _floating_to(batch: dict[str, Any], dtype: torch.dtype, device: torch.device) -> dict[str, Any]:
    def move(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)
        if isinstance(x, list):
            return [move(v) for v in x]
        return x

    return {k: move(v) for k, v in batch.items()}


class AccelerateBackend:
    """DDP (or a single process) through `accelerate.Accelerator`; accumulation is done by hand with
    `no_sync`, so the loop decides exactly when an optimizer step happens (or is skipped)."""

    def __init__(self, model: torch.nn.Module, optim: OptimSection, train: TrainSection) -> None:
        from accelerate import Accelerator, DistributedDataParallelKwargs

        # Parameters unused by a batch (SAM2 when no sample has a mask, its memory modules always)
        # would otherwise stop DDP's reducer.
        ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available(), kwargs_handlers=[ddp],
                                       mixed_precision="bf16" if train.precision == "bf16" else "no")
        self.module = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.params, optim.lr, optim.betas, optim.weight_decay)
        self.scheduler = build_scheduler(self.optimizer, optim.warmup_steps, train.max_steps)
        # Only the model is prepared: accelerate's scheduler wrapper would step once per process.
        self.model = self.accelerator.prepare_model(model)
        self.grad_accum, self.grad_clip = train.grad_accum, optim.grad_clip

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world_size(self) -> int:
        return self.accelerator.num_processes

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def forward(self, batch: dict[str, Any]) -> Any:
        return self.model(**_floating_to(batch, torch.float32, self.device))

    @contextlib.contextmanager
    def micro_step(self, last: bool) -> Iterator[None]:
        """Gradients are all-reduced only on the last micro-batch of a window."""
        with contextlib.nullcontext() if last else self.accelerator.no_sync(self.model):
            yield

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss / self.grad_accum)

    def drop_grads(self, prefixes: list[str]) -> None:
        """No update for parameters under `prefixes` this step (AdamW skips parameters without a grad)."""
        for name, param in self.module.named_parameters():
            if param.requires_grad and name.startswith(tuple(prefixes)):
                param.grad = None

    def step(self) -> float:
        norm = self.accelerator.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def skip(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        return self.accelerator.reduce(tensor.to(self.device), reduction=op)

    def barrier(self) -> None:
        self.accelerator.wait_for_everyone()

    def save_state(self, folder: Path) -> None:
        if self.rank == 0:
            torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")
            torch.save(self.scheduler.state_dict(), folder / "scheduler.pt")

    def load_state(self, folder: Path) -> None:
        self.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
        self.scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))

    def gather_trainable(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.module.named_parameters() if p.requires_grad}

    def close(self) -> None:
        self.accelerator.end_training()
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def deepspeed_config(path: str | Path, train: TrainSection, world_size: int) -> dict[str, Any]:
    """The DeepSpeed JSON with the batch geometry, clipping and precision of the recipe filled in.

    Raises:
        ConfigError: the file is missing or is not a ZeRO stage 2/3 config.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"DeepSpeed config {path} does not exist")
    from videoglamm.safe_io import read_json

    cfg = read_json(path, ConfigError, what="a DeepSpeed config")
    stage = cfg.get("zero_optimization", {}).get("stage")
    if stage not in (2, 3):
        # Stages 2/3 discard a step with non-finite gradients; the loop relies on it (see DeepSpeedBackend).
        raise ConfigError(f"{path}: zero_optimization.stage must be 2 or 3, got {stage!r}")
    cfg.update(train_micro_batch_size_per_gpu=train.micro_batch_size,
               gradient_accumulation_steps=train.grad_accum,
               train_batch_size=train.micro_batch_size * train.grad_accum * world_size)
    cfg["bf16"] = {"enabled": train.precision == "bf16", "check_grad_overflow": True}
    cfg.setdefault("zero_allow_untested_optimizer", True)  # our torch AdamW
    return cfg


def sam2_direct_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters a `SAM2Base` holds itself (`no_mem_embed`, `maskmem_tpos_enc`, ...), not in a submodule.

    ZeRO-3 gathers a partitioned parameter when the forward of the module that holds it runs, but
    SAM2Base's own forward never does: its parts are called one by one. They are registered as external
    parameters of the top module, so they are whole for the whole forward. Their gradients would have to be
    reduced outside any module's backward, which ZeRO-3 does not do, so they must be frozen.

    Raises:
        ConfigError: one of them is trainable (`sam2.train_all`).
    """
    from sam2.modeling.sam2_base import SAM2Base

    direct = [(f"{name}.{pname}" if name else pname, param)
              for name, module in model.named_modules() if isinstance(module, SAM2Base)
              for pname, param in module.named_parameters(recurse=False)]
    trainable = [name for name, param in direct if param.requires_grad]
    if trainable:
        raise ConfigError(f"ZeRO-3 cannot train the parameters SAM2Base holds outside its submodules "
                          f"({', '.join(trainable)}): set sam2.train_all false (the official recipe trains the "
                          f"mask decoder only) or use configs/deepspeed/zero2.json")
    return [param for _, param in direct]


class DeepSpeedBackend:
    """A DeepSpeed engine with a torch AdamW and our schedule.

    Non-finite losses: ZeRO 2/3 find the non-finite gradient norm at the window's boundary, drop the
    gradients and skip both the update and the scheduler step. `step` checks that DeepSpeed did skip
    whenever the loop saw a non-finite loss, and fails loudly otherwise.
    """

    def __init__(self, model: torch.nn.Module, optim: OptimSection, train: TrainSection) -> None:
        import deepspeed

        if not torch.distributed.is_initialized():
            for key, value in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0"),
                               ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29533")):
                os.environ.setdefault(key, value)
            deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
        world = torch.distributed.get_world_size()
        self.module = model
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = build_optimizer(params, optim.lr, optim.betas, optim.weight_decay)
        scheduler = build_scheduler(optimizer, optim.warmup_steps, train.max_steps)
        cfg = deepspeed_config(train.deepspeed_config, train, world)
        cfg["gradient_clipping"] = optim.grad_clip
        external = sam2_direct_parameters(model) if cfg["zero_optimization"]["stage"] == 3 else []
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=cfg, model_parameters=params)
        self.stage = cfg["zero_optimization"]["stage"]
        self.dtype = torch.bfloat16 if train.precision == "bf16" else torch.float32
        for param in external:  # now ZeRO-3 partitions
            deepspeed.zero.register_external_parameter(model, param)

    @property
    def rank(self) -> int:
        return torch.distributed.get_rank()

    @property
    def world_size(self) -> int:
        return torch.distributed.get_world_size()

    @property
    def device(self) -> torch.device:
        return self.engine.device

    def forward(self, batch: dict[str, Any]) -> Any:
        return self.engine(**_floating_to(batch, self.dtype, self.device))

    @contextlib.contextmanager
    def micro_step(self, last: bool) -> Iterator[None]:
        yield  # the engine knows its accumulation boundary

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)  # the engine divides by gradient_accumulation_steps
        if not self.engine.is_gradient_accumulation_boundary():
            self.engine.step()

    def _boundary_step(self, expect_skip: bool) -> float:
        skipped = self.engine.skipped_steps
        self.engine.step()
        did_skip = self.engine.skipped_steps > skipped
        if did_skip != expect_skip:
            raise TrainingError(f"DeepSpeed {'skipped' if did_skip else 'applied'} a step the loop "
                                f"expected to "
                                f"be {'skipped' if expect_skip else 'applied'}; check the bf16/ZeRO config")
        norm = self.engine.get_global_grad_norm()
        return float("nan") if norm is None else float(norm)

    def step(self) -> float:
        return self._boundary_step(expect_skip=False)

    def skip(self) -> None:
        self._boundary_step(expect_skip=True)

    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        out = tensor.detach().clone().to(self.device)
        reduce_op = torch.distributed.ReduceOp
        torch.distributed.all_reduce(out, op=reduce_op.MAX if op == "max" else reduce_op.SUM)
        return out / self.world_size if op == "mean" else out

    def barrier(self) -> None:
        torch.distributed.barrier()

    def save_state(self, folder: Path) -> None:
        self.engine.save_checkpoint(str(folder), tag="deepspeed", save_latest=False)

    def load_state(self, folder: Path) -> None:
        self.engine.load_checkpoint(str(folder), tag="deepspeed", load_optimizer_states=True,
                                    load_lr_scheduler_states=True)

    def gather_trainable(self) -> dict[str, torch.Tensor]:
        import deepspeed

        named = [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]
        context = (deepspeed.zero.GatheredParameters([p for _, p in named], modifier_rank=None)
                   if self.stage == 3 else contextlib.nullcontext())
        with context:
            return {n: p.detach().clone().float() for n, p in named}

    def close(self) -> None:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def build_backend(model: torch.nn.Module, optim: OptimSection, train: TrainSection) -> Any:
    if train.backend == "deepspeed":
        return DeepSpeedBackend(model, optim, train)
    return AccelerateBackend(model, optim, train)
