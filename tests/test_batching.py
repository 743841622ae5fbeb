"""Batched inference equals one-at-a-time inference.

`generate_batch` against `generate` row by row (tiny and mid LLMs, every hidden source, cache and no
cache, rows that stop at different steps); `predict_batch` against `predict_many` one (video, prompt) at a
time on the shipped trained tiny model, whose answers carry `[SEG]`.
"""

from __future__ import annotations

import functools
import json
from collections import Counter

import numpy as np
import pytest
import torch

from videoglamm.config import VideoGLaMMConfig
from videoglamm.errors import InputError
from videoglamm.modeling.generation import generate, generate_batch
from videoglamm.modeling.llm import build_llm

LENGTHS = (40, 23, 57, 31, 12, 60)


def _phrase_index(seg: int):
    # The two tokens before each [SEG] are its phrase (what VideoGLaMMProcessor derives from <p> tags).
    def index(tokens):
        out, k = [0] * len(tokens), 0
        for i, t in enumerate(tokens):
            if t == seg:
                k += 1
                for j in range(max(0, i - 2), i):
                    out[j] = k
        return out
    return index


@pytest.fixture
def lm_case(request):
    return _lm_case(getattr(request, "param", "videoglamm-tiny"))


@functools.lru_cache(maxsize=None)
def _lm_case(preset: str):
    """A random LLM, prompts of several lengths, and a [SEG] id and stop ids the model really emits, chosen
    from its free-running outputs so that rows emit [SEG] and stop at different steps."""
    torch.manual_seed(0)
    cfg = VideoGLaMMConfig.from_preset(preset)
    lm = build_llm(cfg.llm).eval()
    embeds = [torch.randn(n, cfg.llm.hidden_size) for n in LENGTHS]
    free = [generate(lm, e[None], seg_token_id=-1, stop_ids=set(), max_new_tokens=24).token_ids for e in embeds]
    seg = Counter(t for f in free for t in f).most_common(1)[0][0]

    def ends(stops):
        return [next((i for i, t in enumerate(f) if t in stops), None) for f in free]

    def varied(stops):
        # Some rows stop early, at different steps, some run to the budget, and some emit [SEG] first.
        e = ends(stops)
        return (len({x for x in e if x is not None}) >= 2 and None in e
                and any(seg in f[:x] for f, x in zip(free, e)))

    pairs = ({a, b} - {seg} for a in free[1][4:] for b in free[3][8:])
    stops = next((p for p in pairs if varied(p)), None)
    assert stops is not None, f"no stop ids make the rows stop at different steps: {free}"
    return lm, embeds, seg, stops


_SLOW = pytest.mark.slow  # the mid LLM: one default case, the rest opt-in
CASES = [(preset, cache, source) for preset in ("videoglamm-tiny", "videoglamm-mid") for cache in (True, False)
         for source in ("before_seg", "seg", "phrase")]


@pytest.mark.parametrize("lm_case, use_cache, source", [
    pytest.param(*case, marks=_SLOW) if case[0] == "videoglamm-mid" and case[1:] != (True, "before_seg") else case
    for case in CASES], indirect=["lm_case"])
def test_generate_batch_equals_generate_row_by_row(lm_case, use_cache, source):
    lm, embeds, seg, stops = lm_case
    kwargs = dict(seg_token_id=seg, stop_ids=stops, hidden_source=source, max_new_tokens=24,
                  phrase_index=_phrase_index(seg), use_cache=use_cache)
    batch = generate_batch(lm, embeds, **kwargs)
    for e, b in zip(embeds, batch):
        single = generate(lm, e[None], **kwargs)
        assert b.token_ids == single.token_ids and b.stopped == single.stopped
        assert b.seg_hidden.shape == single.seg_hidden.shape
        # The same values up to fp32 summation order (padding and batch size change the kernels' blocking).
        torch.testing.assert_close(b.seg_hidden, single.seg_hidden, rtol=1e-5, atol=1e-5)
    assert {b.stopped for b in batch} == {True, False}
    assert sum(b.seg_hidden.shape[0] for b in batch) > 0


def test_generate_batch_samples_with_a_generator(lm_case):
    lm, embeds, seg, stops = lm_case
    kwargs = dict(seg_token_id=seg, stop_ids=stops, max_new_tokens=16, do_sample=True, temperature=1.5, top_p=0.9)
    one = generate_batch(lm, embeds[:1], generator=torch.Generator().manual_seed(3), **kwargs)[0]
    single = generate(lm, embeds[0][None], generator=torch.Generator().manual_seed(3), **kwargs)
    assert one.token_ids == single.token_ids  # one row draws exactly as generate does
    runs = [[o.token_ids for o in generate_batch(lm, embeds, generator=torch.Generator().manual_seed(s), **kwargs)]
            for s in (3, 3, 4)]
    assert runs[0] == runs[1] and runs[0] != runs[2]
    greedy = [o.token_ids for o in generate_batch(lm, embeds, seg_token_id=seg, stop_ids=stops, max_new_tokens=16)]
    assert runs[0] != greedy


def test_generate_batch_rejects_bad_prompts(lm_case):
    lm, embeds, seg, stops = lm_case
    with pytest.raises(ValueError, match="at least one"):
        generate_batch(lm, [], seg_token_id=seg, stop_ids=stops)
    with pytest.raises(ValueError, match=r"\(L_i, hidden\)"):
        generate_batch(lm, [embeds[0], embeds[1][None]], seg_token_id=seg, stop_ids=stops)


# -- predict ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained():
    """The shipped tiny model and 3 synthetic videos (different lengths and sizes) with referring prompts."""
    from eval.common import load_frames
    from videoglamm import VideoGLaMM
    from videoglamm.data.synthetic_io import write_dataset

    model = VideoGLaMM.from_pretrained("videoglamm-tiny-synthetic").eval()
    # Its SAM2 scores objects on these small frames as absent; raise the object-score bias so the compared
    # masks are not all empty.
    with torch.no_grad():
        model.mask_decoder.model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    import tempfile
    from pathlib import Path

    videos, prompts = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (t, size) in enumerate([(6, (48, 64)), (9, (40, 56)), (5, (48, 64))]):
            root = write_dataset(Path(tmp) / str(i), 1, i, num_frames=t, size=size, progress=False)
            video, entry = next(iter(json.loads((root / "meta_expressions.json").read_text())["videos"].items()))
            videos.append(load_frames([root / "JPEGImages" / video / f"{f}.jpg" for f in entry["frames"]]))
            exps = [x["exp"] for x in entry["expressions"].values()]
            prompts.append([f"What is {x} in this video? Please respond with segmentation masks." for x in exps])
    prompts[1] = prompts[1][:1] + ["Describe the video in detail."]
    return model, videos, prompts


def _assert_same(a, b):
    assert a.text == b.text and a.phrases == b.phrases and a.frame_indices == b.frame_indices
    assert len(a.masks) == len(b.masks)
    for x, y in zip(a.masks, b.masks):
        assert torch.equal(x, y)
    torch.testing.assert_close(a.scores, b.scores)


@pytest.mark.parametrize("options", [{"mask_mode": "track"}, {"mask_mode": "framewise"},
                                     {"mask_mode": "track", "prompt_frames": "encoder", "num_frames": 4}])
def test_batched_predict_equals_one_at_a_time(trained, monkeypatch, options):
    from videoglamm.modeling import batched
    from videoglamm.modeling.predict import PredictOptions, predict_many

    model, videos, prompts = trained
    opts = PredictOptions.for_model(model.config, max_new_tokens=24, **options)
    expected = [[predict_many(model, model._processor(), v, [p], opts)[0] for p in ps] for v, ps in zip(videos, prompts)]
    from videoglamm.modeling import session

    calls = Counter()
    for name, owner in (("encode_video", model), ("decode", model.mask_decoder), ("SAM2VideoTracker", session)):
        original = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, _o=original, _n=name, **k: calls.update([_n]) or _o(*a, **k))
    original_generate = batched.generate_batch
    monkeypatch.setattr(batched, "generate_batch", lambda *a, **k: calls.update(["generate"]) or original_generate(*a, **k))
    got = model.predict(videos, prompts, max_new_tokens=24, **options)
    assert [len(g) for g in got] == [len(p) for p in prompts]
    for exp_video, got_video in zip(expected, got):
        for e, g in zip(exp_video, got_video):
            _assert_same(e, g)
    # Answers with [SEG] and masks with pixels: the comparison covers real tracks.
    assert sum(len(r.masks) for v in got for r in v) >= 4
    assert all(m.any() for v in got for r in v for m in r.masks)
    # Two views shapes (all videos share T and sizes after the transforms): one encoder call.
    assert calls["encode_video"] == 1 and calls["generate"] == 1
    if options["mask_mode"] == "track":
        assert calls["SAM2VideoTracker"] == len(videos)  # one SAM2 state per video, all answers' objects together
    else:
        assert calls["decode"] == sum(len(v) for v in videos)  # one decode per frame, all objects


def test_predict_call_forms(trained):
    model, videos, prompts = trained
    one = model.predict(videos[0], prompts[0][0], max_new_tokens=24)
    many = model.predict(videos[0], prompts[0][:2], max_new_tokens=24)
    flat = model.predict(videos[:2], prompts[0][:2], max_new_tokens=24)  # the same prompts on every video
    _assert_same(one, many[0])
    _assert_same(many[1], flat[0][1])
    assert len(flat) == 2 and all(len(v) == 2 for v in flat)
    frames_as_list = [f for f in videos[2]]  # one video given as a list of (H, W, 3) frames
    _assert_same(model.predict(frames_as_list, prompts[2][0], max_new_tokens=24),
                 model.predict(videos[2], prompts[2][0], max_new_tokens=24))
    with pytest.raises(InputError, match="prompt lists for 3 videos"):
        model.predict(videos, prompts[:2])
    with pytest.raises(InputError, match="no prompt"):
        model.predict(videos[:2], [prompts[0], []])
    with pytest.raises(InputError, match="need a list of videos"):
        model.predict(videos[0], [prompts[0]])
    with pytest.raises(InputError, match="no prompt"):
        model.predict(videos[0], [])


def test_batched_runner_predictions_are_byte_identical(tmp_path, trained):
    """A MeViS-layout run (several expressions per video) writes the same bytes batched and one at a time."""
    import argparse

    import runner_fixtures as fx
    from eval import rvos
    from eval.common import Predictor

    model = trained[0]
    args = argparse.Namespace(num_frames=None, frame_sampling="uniform", max_new_tokens=24, mask_mode="track",
                              clip_length=None)
    root = fx.mevis(tmp_path, "valid_u", videos=3)
    outputs = {}
    for batched in (False, True):
        predictor = Predictor.with_options("videoglamm-tiny-synthetic", "videoglamm", model, args)
        predictor.batched = batched
        out = tmp_path / f"out_{batched}"
        rvos.main(["--benchmark", "mevis-valid-u", "--root", str(root), "--model", "x", "--out", str(out),
                   "--no-progress"], predictor)
        files = sorted(p for p in (out / "predictions").rglob("*.png"))
        outputs[batched] = {p.relative_to(out).as_posix(): p.read_bytes() for p in files}
        outputs[batched]["answers"] = [json.loads(p.read_text())["answers"] for p in sorted((out / "done").glob("*"))]
    assert outputs[True] == outputs[False]
    pngs = [k for k in outputs[True] if k.endswith(".png")]
    assert len(pngs) == sum(len(e["expressions"]) * fx.FRAMES for e in json.loads(
        (root / "valid_u" / "meta_expressions.json").read_text())["videos"].values())
    # Masks are not all empty: the comparison covers real tracks.
    from PIL import Image

    assert any(np.asarray(Image.open(tmp_path / "out_True" / k)).any() for k in pngs)


def test_mid_preset_is_tiny_with_a_wide_llm():
    import dataclasses

    from videoglamm.processing.processor import VideoGLaMMProcessor

    tiny, mid = VideoGLaMMConfig.from_preset("videoglamm-tiny"), VideoGLaMMConfig.from_preset("videoglamm-mid")
    for section in VideoGLaMMConfig.sub_sections:
        if section != "llm":
            assert dataclasses.asdict(getattr(mid, section)) == dataclasses.asdict(getattr(tiny, section)), section
    assert (mid.llm.num_hidden_layers, mid.llm.hidden_size) == (8, 1024)
    tokenizer = VideoGLaMMProcessor.from_preset("videoglamm-mid").tokenizer
    assert len(tokenizer) == mid.llm.vocab_size and tokenizer.convert_tokens_to_ids("[SEG]") == mid.tokens.seg_token_id
