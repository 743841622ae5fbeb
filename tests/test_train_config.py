"""Training recipes: every YAML under configs/train loads and builds its model; overrides; schedule."""

from pathlib import Path

import pytest
import torch

from train.config import apply_overrides, from_dict, load_config
from train.schedule import warmup_decay
from videoglamm.errors import ConfigError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _videoglamm_recipes():
    """configs/train/*.yaml read by train/train.py: those naming a VideoGLaMM preset
    (SAMWISE recipes have their own trainer)."""
    import yaml

    from videoglamm.config import PRESETS

    return [p for p in sorted((CONFIGS / "train").glob("*.yaml"))
            if yaml.safe_load(p.read_text()).get("model", {}).get("preset") in PRESETS]


RECIPES = _videoglamm_recipes()


def test_recipes_exist():
    assert {p.name for p in RECIPES} >= {"tiny_synthetic.yaml", "videoglamm_phi3_mini.yaml"}
    assert all((CONFIGS / "deepspeed" / f"zero{s}.json").is_file() for s in (2, 3))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_builds_its_model(path):
    from train.model import prepare_for_training
    from train.config import model_config
    from videoglamm.modeling.videoglamm import VideoGLaMM

    cfg = load_config(path)
    config = model_config(cfg.model)
    # The tiny recipe builds for real; the full one on the meta device (no memory, no weights needed).
    device = "cpu" if config.llm.hidden_size <= 256 else "meta"
    with torch.device(device):
        model = VideoGLaMM(config)
    prepare_for_training(model, cfg.model)
    names = model.trainable_parameter_names()
    assert any(n.startswith("seg_projector.") for n in names)
    assert not any(n.startswith(("image_tower.", "video_tower.")) for n in names)
    if cfg.model.lora:
        assert model.has_lora and any("lora_" in n for n in names)
        assert not any(n.endswith("qkv_proj.base_layer.weight") for n in names)  # base stays frozen
    if cfg.model.train_llm:
        assert all(p.requires_grad for p in model.language_model.parameters())
    if config.sam2.train_all:
        assert all(p.requires_grad for p in model.mask_decoder.parameters())
    if device == "cpu":
        from videoglamm.processing.processor import VideoGLaMMProcessor

        VideoGLaMMProcessor(config, VideoGLaMMProcessor.from_preset(cfg.model.preset).tokenizer)


def test_full_recipe_mixture_has_one_weight_per_dataset():
    cfg = load_config(CONFIGS / "train" / "videoglamm_phi3_mini.yaml")
    assert cfg.train.backend == "deepspeed" and cfg.train.grad_accum == 10 and cfg.optim.lr == 3e-4
    assert cfg.optim.betas == (0.9, 0.95) and cfg.optim.weight_decay == 0.0 and cfg.optim.grad_clip == 1.0
    weights = {d.name: d.weight for d in cfg.data.datasets}
    assert weights == {"refer_seg": 1, "refer_vos": 1, "mevis": 1, "vidstg": 1, "video_vqa": 1,
                       "anet_gcg": 20, "video_gcg": 5, "mevis_gcg": 20, "vidstg_gcg": 20, "hcstvg_gcg": 10}


def test_overrides_walk_mappings_and_lists():
    raw = {"train": {"max_steps": 5}, "data": {"datasets": [{"weight": 1}]}}
    out = apply_overrides(raw, ["train.max_steps=2", "data.datasets.0.weight=3.5", "model.lora=false"])
    assert out["train"]["max_steps"] == 2 and out["data"]["datasets"][0]["weight"] == 3.5
    assert out["model"]["lora"] is False and raw["train"]["max_steps"] == 5
    with pytest.raises(ConfigError, match="index"):
        apply_overrides(raw, ["data.datasets.4.weight=1"])
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides(raw, ["train.max_steps"])


def test_unknown_keys_and_bad_values_raise():
    base = {"model": {"preset": "videoglamm-tiny"}, "train": {"output_dir": "x", "max_steps": 1},
            "data": {"datasets": [{"name": "a", "reader": "RefVOSReader", "weight": 1}]}}
    from_dict(base)
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(apply_overrides(base, ["train.max_step=3"]))
    with pytest.raises(ConfigError, match="precision"):
        from_dict(apply_overrides(base, ["train.precision=fp16"]))
    with pytest.raises(ConfigError, match="deepspeed_config"):
        from_dict(apply_overrides(base, ["train.backend=deepspeed"]))


def test_warmup_then_linear_decay():
    assert [warmup_decay(s, 4, 12) for s in (0, 2, 4)] == [0.0, 0.5, 1.0]
    assert warmup_decay(8, 4, 12) == pytest.approx(0.5) and warmup_decay(12, 4, 12) == 0.0
    assert warmup_decay(3, 0, 3) == 0.0 and warmup_decay(0, 0, 4) == 1.0
