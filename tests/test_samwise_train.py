"""The shipped SAMWISE training YAML builds and trains (and resumes) on synthetic videos; eval metrics."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml

from videoglamm.samwise.config import SAMWISEConfig
from videoglamm.samwise.model import SAMWISE

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "train" / "samwise_tiny_synthetic.yaml"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_yaml_builds_and_trains_then_resumes(tmp_path):
    cfg = yaml.safe_load(CONFIG.read_text())
    SAMWISE(SAMWISEConfig.from_preset(cfg["model"]["preset"], **cfg["model"]["overrides"]))
    small = dict(cfg, data=dict(cfg["data"], num_videos=2), optim=dict(cfg["optim"], batch_size=1),
                 run=dict(cfg["run"], save_every=1, log_every=1))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(small))
    train = _load(ROOT / "train" / "train_samwise.py", "train_samwise")
    out = tmp_path / "run"
    train.main([str(config), "--steps", "1", "--output-dir", str(out), "--no-adapters"])
    first = SAMWISE.from_pretrained(out / "model")
    assert not first.config.adapter.enabled and "adapters" not in first.trainable_modules()
    train.main([str(config), "--steps", "2", "--output-dir", str(out), "--no-adapters"])
    assert json.loads((out / "checkpoint" / "step.json").read_text())["step"] == 2
    second = SAMWISE.from_pretrained(out / "model")
    changed = [k for k, v in first.state_dict().items() if not torch.equal(v, second.state_dict()[k])]
    assert changed and all(k.startswith(("prompt_projection.", "conditional_memory_encoder.")) for k in changed)


def test_eval_metrics():
    ev = _load(ROOT / "eval" / "eval_samwise_synthetic.py", "eval_samwise_synthetic")
    a = torch.zeros(20, 20, dtype=torch.bool)
    a[5:15, 5:15] = True
    b = torch.zeros_like(a)
    b[5:15, 10:20] = True
    assert ev.region_j(a, a) == 1.0 and ev.region_j(a, b) == pytest.approx(50 / 150)
    assert ev.region_j(torch.zeros_like(a), torch.zeros_like(a)) == 1.0
    assert ev.boundary_f(a, a) == 1.0 and 0.0 < ev.boundary_f(a, b) < 1.0
    assert ev.boundary_f(a, torch.zeros_like(a)) == 0.0
