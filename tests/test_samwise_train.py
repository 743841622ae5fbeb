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


def _stage0_sam2(tmp_path):
    """A SAM2 checkpoint from a 1-step run of train/sam2_synthetic.py (what the YAML's sam2_init names)."""
    pretrain = _load(ROOT / "train" / "sam2_synthetic.py", "sam2_synthetic")
    out = tmp_path / "sam2.pt"
    assert pretrain.main(["--config", str(ROOT / "configs" / "train" / "tiny_synthetic.yaml"), "--out", str(out),
                          "--steps", "1", "--eval-every", "100"]) == 0
    return out


def test_yaml_builds_and_trains_then_resumes(tmp_path):
    cfg = yaml.safe_load(CONFIG.read_text())
    SAMWISE(SAMWISEConfig.from_preset(cfg["model"]["preset"], **cfg["model"]["overrides"]))
    small = dict(cfg, data=dict(cfg["data"], num_videos=2), optim=dict(cfg["optim"], batch_size=1),
                 run=dict(cfg["run"], save_every=1, log_every=1),
                 model=dict(cfg["model"], sam2_init=str(_stage0_sam2(tmp_path))))
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


def test_yaml_inits_sam2_from_the_pretraining_stage(tmp_path):
    # The frozen SAM2 comes from train/sam2_synthetic.py run on the VideoGLaMM tiny recipe: its weights must
    # fit the SAM2 the SAMWISE recipe builds, strictly.
    from videoglamm.samwise.sam2_init import load_sam2_weights

    cfg = yaml.safe_load(CONFIG.read_text())
    assert cfg["model"]["sam2_init"] == "runs/sam2_synthetic/sam2.pt"
    model = SAMWISE(SAMWISEConfig.from_preset(cfg["model"]["preset"], **cfg["model"]["overrides"]))
    checkpoint = _stage0_sam2(tmp_path)
    load_sam2_weights(model, checkpoint)
    saved = torch.load(checkpoint, weights_only=True)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in model.sam2.model.state_dict().items())


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
                       "run.use_adapters=false", f"run.output_dir={out}",
                       f"model.sam2_init={_stage0_sam2(tmp_path)}"]) == 0
    model = SAMWISE.from_pretrained(out / "model")
    assert not model.config.adapter.enabled
    assert json.loads((out / "checkpoint" / "step.json").read_text())["step"] == 1
