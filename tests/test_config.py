import dataclasses
from pathlib import Path

import pytest
import yaml

from videoglamm.config import PRESETS, VideoGLaMMConfig
from videoglamm.errors import ConfigError
from videoglamm.samwise.config import SAMWISE_PRESETS, SAMWISEConfig


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_round_trip(name, tmp_path):
    cfg = VideoGLaMMConfig.from_preset(name)
    cfg.save_pretrained(tmp_path)
    back = VideoGLaMMConfig.from_pretrained(tmp_path)
    for section in VideoGLaMMConfig.sub_sections:
        assert dataclasses.asdict(getattr(back, section)) == dataclasses.asdict(getattr(cfg, section))
    assert back.preset == name


def test_full_preset_token_budget():
    cfg = VideoGLaMMConfig.from_preset("videoglamm-phi3-mini")
    assert cfg.image_tokens_per_frame == 144 and cfg.video_tokens_per_frame == 64
    assert cfg.num_visual_tokens == 3328
    assert cfg.llm.vocab_size == 32012 and cfg.tokens.seg_token_id == 32011
    assert cfg.lora.target_modules == ("qkv_proj",) and (cfg.lora.r, cfg.lora.alpha) == (8, 16)


def test_contradictions_raise():
    with pytest.raises(ConfigError, match="divisible by"):
        VideoGLaMMConfig.from_preset("videoglamm-tiny", sampling={"encoder_frames": 6})
    with pytest.raises(ConfigError, match="unknown field"):
        VideoGLaMMConfig.from_preset("videoglamm-tiny", llm={"hiden_size": 3})
    with pytest.raises(ConfigError, match="unknown preset"):
        VideoGLaMMConfig.from_preset("videoglamm-huge")
    with pytest.raises(ConfigError, match="seg_token_id"):
        VideoGLaMMConfig.from_preset("videoglamm-tiny", tokens={"seg_token_id": 9999})
    with pytest.raises(ConfigError, match="outside the vocabulary"):
        VideoGLaMMConfig.from_preset("videoglamm-tiny", llm={"eos_token_id": 512})


def test_every_shipped_yaml_loads():
    files = sorted((Path(__file__).resolve().parent.parent / "configs").rglob("*.yaml"))
    for path in files:
        data = yaml.safe_load(path.read_text())
        assert isinstance(data, dict), path
        if "model" in data and "preset" in data["model"]:
            preset, overrides = data["model"]["preset"], data["model"].get("overrides") or {}
            cls = VideoGLaMMConfig if preset in PRESETS else SAMWISEConfig
            assert preset in PRESETS or preset in SAMWISE_PRESETS, f"{path}: unknown preset {preset}"
            cls.from_preset(preset, **overrides)
