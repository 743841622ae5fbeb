"""Launched runs: SIGKILL + resume equals an uninterrupted run; 2-process DDP equals 1 process with the
same global batch; DeepSpeed ZeRO-2 and ZeRO-3 really run 2 processes (ZeRO-3 matching ZeRO-2)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import tiny_recipe

ROOT = Path(__file__).resolve().parent.parent
TRAIN = str(ROOT / "train" / "train.py")


def _env():
    # One thread per process: two processes on two cores, and no spinning threads fighting for them.
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", VIDEOGLAMM_TRAIN_THREADS="1",
                TOKENIZERS_PARALLELISM="false")


def _write(recipe, path):
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def _run(cmd, timeout=400):
    proc = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _final(out, step):
    return load_file(out / "checkpoints" / f"step_{step:08d}" / "trainable.safetensors")


def _port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
def test_sigkill_then_resume_matches_uninterrupted(train_data, tmp_path):
    def recipe(out):
        r = tiny_recipe(train_data, out, max_steps=6, save_every=2, keep_last=3)
        r["model"]["lora"] = True  # LoRA dropout draws random numbers: the RNG state must be restored too
        return _write(r, tmp_path / f"{out.name}.yaml")

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    _run([sys.executable, TRAIN, "--config", recipe(straight)])
    proc = subprocess.Popen([sys.executable, TRAIN, "--config", recipe(killed)], env=_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "step_00000002").is_dir():
        assert proc.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (killed / "checkpoints" / "step_00000006").exists(), "killed too late to test resuming"
    _run([sys.executable, TRAIN, "--config", str(tmp_path / "killed.yaml"), "--resume", "auto"])
    a, b = _final(straight, 6), _final(killed, 6)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"
    losses = {m["step"]: m["loss"] for m in _metrics(straight)}
    assert all(m["loss"] == losses[m["step"]] for m in _metrics(killed))


@pytest.mark.distributed
def test_ddp_two_processes_equal_one_process(train_data, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    # Same global batch of 2: one process accumulating 2 micro-batches vs 2 processes with 1 each.
    one_yaml = _write(tiny_recipe(train_data, one, grad_accum=2), tmp_path / "one.yaml")
    _run([sys.executable, TRAIN, "--config", one_yaml])
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(_port())]
    two_yaml = _write(tiny_recipe(train_data, two, grad_accum=1), tmp_path / "two.yaml")
    _run(launch + [TRAIN, "--config", two_yaml])
    state = json.loads((two / "checkpoints" / "step_00000003" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and len(state["sampler"]) == 2
    m1, m2 = _metrics(one), _metrics(two)
    assert [m["step"] for m in m1] == [m["step"] for m in m2] == [1, 2, 3]
    for a, b in zip(m1, m2):
        for key in ("loss", "lm_loss", "bce", "dice"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["step"], key, a[key], b[key])
    w1, w2 = _final(one, 3), _final(two, 3)
    weight_diff = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    loss_diff = max(abs(a[k] - b[k]) for a, b in zip(m1, m2) for k in ("loss", "lm_loss", "bce", "dice"))
    print(f"DDP 2x1 vs 1x2: max loss diff {loss_diff:.3g}, max weight diff after 3 steps {weight_diff:.3g}")
    assert weight_diff < 1e-4


def _deepspeed(train_data, tmp_path, config, sam2=None, name="ds"):
    out = tmp_path / name
    recipe = tiny_recipe(train_data, out, max_steps=2, backend="deepspeed",
                         deepspeed_config=str(ROOT / config))
    if sam2 is not None:
        recipe["model"]["overrides"]["sam2"] = sam2
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
          "--master_port", str(_port()),
          TRAIN, "--config", _write(recipe, tmp_path / "ds.yaml")], timeout=600)
    ckpt = out / "checkpoints" / "step_00000002"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 2
    metrics = _metrics(out)
    assert [m["step"] for m in metrics] == [1, 2] and all(m["loss"] == m["loss"] for m in metrics)
    return ckpt


@pytest.mark.distributed
def test_deepspeed_zero2_two_processes(train_data, tmp_path):
    ckpt = _deepspeed(train_data, tmp_path, "configs/deepspeed/zero2.json")
    # One optimizer-state partition per rank: ZeRO-2 sharded the optimizer over both processes.
    shards = sorted(p.name for p in (ckpt / "deepspeed").glob("*optim_states.pt"))
    assert shards == [f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)]


@pytest.mark.distributed
def test_deepspeed_zero3_two_processes(train_data, tmp_path):
    # The official trainable set: SAM2's mask decoder trains, its image encoder and SAM2Base's own
    # parameters stay frozen (ZeRO-3 cannot reduce gradients of those; see backends.sam2_direct_parameters).
    official = {"train_all": False, "train_mask_decoder": True}
    ckpt = _deepspeed(train_data, tmp_path, "configs/deepspeed/zero3.json", sam2=official)
    # Same losses and weights as ZeRO-2 on the same data: partitioning the parameters changes no arithmetic.
    _deepspeed(train_data, tmp_path, "configs/deepspeed/zero2.json", sam2=official, name="ds2")
    for a, b in zip(_metrics(tmp_path / "ds"), _metrics(tmp_path / "ds2")):
        for key in ("loss", "lm_loss", "bce", "dice"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["step"], key)
    w3, w2 = _final(tmp_path / "ds", 2), _final(tmp_path / "ds2", 2)
    # (weights within the DDP test's bound: the reductions sum in another order, and Adam's first steps
    # turn tiny gradient differences into lr-sized ones; measured 1.4e-5)
    assert set(w3) == set(w2) and max(float((w3[k] - w2[k]).abs().max()) for k in w3) < 1e-4
    assert len(list((ckpt / "deepspeed").glob("*optim_states.pt"))) == 2
    assert load_file(ckpt / "trainable.safetensors")  # gathered from the ZeRO-3 partitions


def test_zero3_refuses_to_train_sam2_base_own_parameters():
    from train.backends import sam2_direct_parameters
    from videoglamm.config import VideoGLaMMConfig
    from videoglamm.errors import ConfigError
    from videoglamm.modeling.videoglamm import VideoGLaMM

    frozen = VideoGLaMM(VideoGLaMMConfig.from_preset("videoglamm-tiny", sam2={"train_all": False}))
    names = {id(p) for p in sam2_direct_parameters(frozen)}
    assert id(frozen.mask_decoder.model.no_mem_embed) in names
    assert not any(p.requires_grad for p in sam2_direct_parameters(frozen))
    trained = VideoGLaMM(VideoGLaMMConfig.from_preset("videoglamm-tiny", sam2={"train_all": True}))
    with pytest.raises(ConfigError, match="no_mem_embed.*zero2.json"):
        sam2_direct_parameters(trained)
