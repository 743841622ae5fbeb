"""SAMWISE streaming inference, persistence and the predict CLI (tiny preset)."""

import json
import logging

import numpy as np
import pytest
import torch

from videoglamm.errors import CheckpointError, InputError
from videoglamm.samwise.config import SAMWISEConfig
from videoglamm.samwise.model import SAMWISE
from videoglamm.samwise.prompts import motion_prompt, verb_token_mask
from videoglamm.samwise.streaming import ClipTracker


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return SAMWISE(SAMWISEConfig.from_preset("samwise-tiny")).eval()


def _video(t=5, h=40, w=52, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def test_streaming_equals_clip_by_clip(tiny):
    video = _video(5)
    prompts = ["the red circle", "the shape moving left"]
    results = tiny.predict(video, prompts, clip_length=2)  # clips of 2, 2 and 1 frames
    assert len(results) == 2 and results[1].text == "the shape moving left"
    assert results[0].masks[0].shape == (5, 40, 52) and results[0].masks[0].dtype == torch.bool
    tracker = ClipTracker(tiny, prompts)
    logits, scores = zip(*(tracker.step(torch.from_numpy(video[s : s + 2])) for s in (0, 2, 4)))
    logits, scores = torch.cat(logits), torch.cat(scores)  # (T, K, H, W), (T, K)
    for k, result in enumerate(results):
        assert torch.equal(result.masks[0], logits[:, k] > 0)
        assert torch.equal(result.scores[0], scores[:, k])
    assert len(tracker.state.memory) <= 15  # bounded by SAM2's pointer window, not the video


def test_memory_is_carried_across_clips(tiny):
    video = _video(4)
    carried = ClipTracker(tiny, ["the red circle"])
    carried.step(torch.from_numpy(video[:2]))
    _, second = carried.step(torch.from_numpy(video[2:]))
    _, fresh = ClipTracker(tiny, ["the red circle"]).step(torch.from_numpy(video[2:]))
    assert not torch.allclose(second, fresh)  # frames 2-3 read the first clip's memory; a fresh start has none


def test_short_video_global_hsa_and_bad_inputs(tiny):
    result = tiny.predict(_video(1), ["the red circle"], hsa="global")  # shorter than one clip
    assert result[0].masks[0].shape == (1, 40, 52)
    assert all(a.hsa.scope == "local" for a in tiny.adapters)  # the option is temporary
    with pytest.raises(InputError):
        tiny.predict(_video(2), [])
    with pytest.raises(InputError):
        tiny.predict(_video(2), ["  "])
    with pytest.raises(InputError):
        tiny.predict(_video(2), "the red circle")
    with pytest.raises(InputError):
        tiny.predict(_video(2), ["x"], hsa="nowhere")
    with pytest.raises(InputError):
        tiny.predict(np.zeros((2, 8, 8), dtype=np.uint8), ["x"])


def test_motion_prompt_pools_verb_tokens(tiny):
    text = tiny.tokenizer(["the circle moving left", "a red square"], padding=True, return_offsets_mapping=True,
                          return_tensors="pt")
    verbs = verb_token_mask(["the circle moving left", "a red square"], text["offset_mapping"],
                            lambda s: [(s.index("moving"), s.index("moving") + 6)] if "moving" in s else [])
    assert verbs[0].any() and not verbs[1].any()
    hidden = torch.randn(2, verbs.shape[1], 32)
    pooled = motion_prompt(torch.nn.Identity(), hidden, verbs)
    assert torch.allclose(pooled[0], hidden[0][verbs[0]].mean(0)) and torch.equal(pooled[1], hidden[1, 0])


def test_save_and_load_roundtrip(tiny, tmp_path, caplog):
    tiny.save_pretrained(tmp_path / "m")
    loaded = SAMWISE.from_pretrained(tmp_path / "m").eval()
    a, b = tiny.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert {n for n, p in loaded.named_parameters() if p.requires_grad} == \
        {n for n, p in tiny.named_parameters() if p.requires_grad}
    video = _video(3)
    assert torch.equal(tiny.predict(video, ["the red circle"])[0].masks[0],
                       loaded.predict(video, ["the red circle"])[0].masks[0])
    with caplog.at_level(logging.WARNING):
        SAMWISE.from_pretrained("samwise-tiny")
    assert "RANDOMLY" in caplog.text
    from safetensors.torch import load_file, save_file

    state = load_file(tmp_path / "m" / "model.safetensors")
    state["adapters.9.extra"] = torch.zeros(1)
    del state["prompt_projection.layers.0.bias"]
    save_file(state, tmp_path / "m" / "model.safetensors")
    with pytest.raises(CheckpointError, match="1 missing, 1 unexpected"):
        SAMWISE.from_pretrained(tmp_path / "m")


def test_predict_cli_writes_outputs(tmp_path):
    from videoglamm.cli import main
    from videoglamm.visualize import VideoWriter

    video_path = tmp_path / "v.mp4"
    with VideoWriter(video_path, 4.0) as writer:
        for frame in _video(3, 48, 64):
            writer.write(frame)
    out = tmp_path / "out"
    code = main(["predict", str(video_path), "the red circle", "the shape moving up", "--model", "samwise-tiny",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["phrases"] == ["the red circle", "the shape moving up"] and len(result["objects"]) == 2
    assert len(result["objects"][0]["masks"]) == result["num_frames"] == 3
    assert (out / "overlay.mp4").is_file() and len(list((out / "masks" / "1").glob("*.png"))) == 3
