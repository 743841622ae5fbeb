"""The shipped SAMWISE training YAML builds and trains (and resumes) on synthetic videos; eval metrics."""

import importlib.util
import json
from pathlib import Path

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


def test_yaml_inits_sam2_from_the_shipped_videoglamm():
    cfg = yaml.safe_load(CONFIG.read_text())
    assert cfg["model"]["sam2_init"] == "videoglamm-tiny-synthetic"
    assert cfg["model"]["overrides"]["sam2"]["image_size"] == 128  # the shipped SAM2's resolution


def test_eval_scores_a_saved_model_by_kind(tmp_path):
    ev = _load(ROOT / "eval" / "eval_samwise_synthetic.py", "eval_samwise_synthetic")
    torch.manual_seed(0)
    SAMWISE(SAMWISEConfig.from_preset("samwise-tiny")).save_pretrained(tmp_path / "m")
    table = ev.evaluate(tmp_path / "m", 1, 1000, 4, (48, 64))
    assert "all" in table and "appearance" in table
    assert table["all"][2] == sum(n for k, (_, _, n) in table.items() if k != "all")
    assert all(0.0 <= j <= 1.0 and 0.0 <= f <= 1.0 for j, f, _ in table.values())


def test_train_py_runs_a_samwise_recipe_with_overrides(tmp_path):
    # One entry point for both systems: train/train.py hands a SAMWISE recipe to train_samwise with its
    # key.path=value overrides.
    train = _load(ROOT / "train" / "train.py", "train_entry")
    out = tmp_path / "run"
    assert train.main(["--config", str(CONFIG), "data.num_videos=1", "optim.batch_size=1", "optim.steps=1",
                       "run.use_adapters=false", f"run.output_dir={out}"]) == 0
    model = SAMWISE.from_pretrained(out / "model")
    assert not model.config.adapter.enabled
    assert json.loads((out / "checkpoint" / "step.json").read_text())["step"] == 1
