import json
import logging

import numpy as np
import pytest
import torch

from conftest import overfit
from videoglamm import VideoGLaMM, VideoGLaMMProcessor
from videoglamm.config import VideoGLaMMConfig
from videoglamm.errors import CheckpointError, InputError, VideoReadError
from videoglamm.modeling.generation import generate
from videoglamm.processing.tokens import END_TAG
from videoglamm.visualize import write_video

ANSWER = "red [SEG] and blue [SEG]."


def _video(t=7, h=40, w=52, seed=0):
    rng = np.random.default_rng(seed)
    video = np.zeros((t, h, w, 3), dtype=np.uint8) + rng.integers(0, 60, size=(1, h, w, 3), dtype=np.uint8)
    for i in range(t):  # a moving bright square, so decoded frames differ from each other
        video[i, 10:22, 2 + 4 * i : 14 + 4 * i] = 230
    return video


@pytest.fixture(scope="module")
def two_seg_model():
    """A tiny model taught to answer with two [SEG] (a few seconds of training on one sample)."""
    torch.manual_seed(0)
    cfg = VideoGLaMMConfig.from_preset("videoglamm-tiny")
    model = VideoGLaMM(cfg)
    processor = VideoGLaMMProcessor.from_preset("videoglamm-tiny")
    model.processor = processor
    batch = processor(videos=[_video()], prompts=["describe"], answers=[ANSWER])
    overfit(model, batch, steps=60)
    # An untrained SAM2 scores every object absent; raise the object-score bias so masks are non-trivial.
    with torch.no_grad():
        model.mask_decoder.model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return model


def test_generation_with_cache_equals_no_cache(two_seg_model):
    m = two_seg_model
    proc = m.processor
    enc = proc.encode_video(_video())
    ids, _ = proc.tokenize("describe")
    with torch.no_grad():
        visual = m.encode_video(enc.pixel_values_image[None], enc.pixel_values_video[None])
        embeds = m.embed_inputs(torch.tensor([ids]), visual)
    stop = {proc.tokenizer.convert_tokens_to_ids(END_TAG), m.config.llm.eos_token_id}
    for source in ("before_seg", "seg"):
        kwargs = dict(seg_token_id=m.config.tokens.seg_token_id, stop_ids=stop, hidden_source=source, max_new_tokens=20)
        cached = generate(m.language_model, embeds, use_cache=True, **kwargs)
        plain = generate(m.language_model, embeds, use_cache=False, **kwargs)
        assert cached.token_ids == plain.token_ids
        assert proc.decode(cached.token_ids) == ANSWER and cached.stopped
        assert cached.seg_hidden.shape == (2, m.config.llm.hidden_size)
        torch.testing.assert_close(cached.seg_hidden, plain.seg_hidden, atol=1e-5, rtol=1e-5)


def test_seg_hidden_matches_teacher_forced_forward(two_seg_model):
    """The hidden states captured during generation are the ones the training forward projects."""
    m = two_seg_model
    batch = m.processor(videos=[_video()], prompts=["describe"], answers=[ANSWER])
    with torch.no_grad():
        teacher = m(**{k: v for k, v in batch.items() if k != "labels"}).seg_embeddings[0]
    result = m.predict(_video(), "describe", max_new_tokens=20)
    assert result.text == ANSWER
    stream = m.predict_stream(_video(), "describe", max_new_tokens=20)
    torch.testing.assert_close(stream.seg_embeddings, teacher, atol=1e-4, rtol=1e-4)


def test_two_segs_give_two_full_tracks(two_seg_model):
    video = _video(t=9)
    for mode in ("track", "framewise"):
        result = two_seg_model.predict(video, "describe", max_new_tokens=20, mask_mode=mode)
        assert len(result.masks) == 2
        assert all(m.shape == (9, 40, 52) and m.dtype == torch.bool for m in result.masks)
        assert result.scores.shape == (2, 9)
        assert any(m.any() for m in result.masks)
        assert result.frame_indices == np.linspace(0, 8, 8, dtype=int).tolist()  # the official rule


def test_predict_stream_equals_predict(two_seg_model):
    video = _video(t=8)
    result = two_seg_model.predict(video, "describe", max_new_tokens=20)
    frames = list(two_seg_model.predict_stream(video, "describe", max_new_tokens=20))
    assert [f[0] for f in frames] == list(range(8))
    for index, masks, scores in frames:
        assert torch.equal(masks, torch.stack([m[index] for m in result.masks]))
        torch.testing.assert_close(scores, result.scores[:, index])


def test_several_prompts_encode_once(two_seg_model, monkeypatch):
    calls = []
    original = two_seg_model.encode_video
    monkeypatch.setattr(two_seg_model, "encode_video", lambda *a: calls.append(1) or original(*a))
    results = two_seg_model.predict(_video(), ["describe", "describe it"], max_new_tokens=20)
    assert len(results) == 2 and len(calls) == 1
    assert results[0].text == ANSWER


def test_mp4_equals_decoded_frames(two_seg_model, tmp_path):
    from videoglamm.processing.video_io import VideoFile

    path = tmp_path / "clip.mp4"
    write_video(path, _video(t=8))
    decoded = VideoFile(path).get(range(8))
    a = two_seg_model.predict(str(path), "describe", max_new_tokens=20, video_fps=None)  # every frame
    b = two_seg_model.predict(decoded.numpy(), "describe", max_new_tokens=20)
    assert a.frame_indices == b.frame_indices
    assert a.text == b.text
    assert all(torch.equal(x, y) for x, y in zip(a.masks, b.masks))
    torch.testing.assert_close(a.scores, b.scores)


def test_save_and_load_are_bit_identical(two_seg_model, tmp_path):
    two_seg_model.save_pretrained(tmp_path / "model")
    loaded = VideoGLaMM.from_pretrained(tmp_path / "model").eval()
    for (name, a), (_, b) in zip(two_seg_model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert set(loaded.trainable_parameter_names()) == set(two_seg_model.trainable_parameter_names())
    batch = two_seg_model.processor(videos=[_video()], prompts=["describe"], answers=[ANSWER],
                                    masks=[torch.ones(2, 7, 40, 52, dtype=torch.bool)])
    with torch.no_grad():
        o1, o2 = two_seg_model(**batch), loaded(**batch)
    assert torch.equal(o1.logits, o2.logits) and torch.equal(o1.loss, o2.loss)
    assert all(torch.equal(a, b) for a, b in zip(o1.pred_masks, o2.pred_masks))
    r1 = two_seg_model.predict(_video(), "describe", max_new_tokens=20)
    r2 = loaded.predict(_video(), "describe", max_new_tokens=20)
    assert r1.text == r2.text and all(torch.equal(x, y) for x, y in zip(r1.masks, r2.masks))


def test_trainable_only_adapter_round_trip(two_seg_model, tmp_path):
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    torch.manual_seed(1)
    base = VideoGLaMM(two_seg_model.config)
    base.processor = two_seg_model.processor
    base.save_pretrained(base_dir)
    tuned = VideoGLaMM.from_pretrained(base_dir)
    tuned.apply_lora()
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    tuned.save_pretrained(adapter_dir, trainable_only=True)
    again = VideoGLaMM.from_pretrained(base_dir, adapter=adapter_dir)
    assert again.has_lora
    for (name, a), (_, b) in zip(tuned.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def test_quantized_llm_loads_on_cpu(two_seg_model, tmp_path):
    pytest.importorskip("bitsandbytes")
    two_seg_model.save_pretrained(tmp_path / "model")
    for mode, cls_name in (("4bit", "Linear4bit"), ("8bit", "Linear8bitLt")):
        q = VideoGLaMM.from_pretrained(tmp_path / "model", quantization=mode).eval()
        kinds = {type(mod).__name__ for mod in q.language_model.modules()}
        assert cls_name in kinds
        assert q.seg_projector.fc1.weight.dtype == torch.float32
        result = q.predict(_video(), "describe", max_new_tokens=20)
        assert isinstance(result.text, str) and len(result.masks) == result.text.count("[SEG]")


def test_bad_inputs(two_seg_model, tmp_path):
    m = two_seg_model
    with pytest.raises(VideoReadError, match="not found"):
        m.predict(tmp_path / "missing.mp4", "describe")
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video")
    with pytest.raises(VideoReadError, match="notes.mp4"):
        m.predict(fake, "describe")
    good = tmp_path / "good.mp4"
    write_video(good, _video(t=8))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 3])
    with pytest.raises(VideoReadError, match="truncated.mp4"):
        m.predict(truncated, "describe")
    with pytest.raises(InputError, match="empty"):
        m.predict(_video(), "   ")
    with pytest.raises(InputError, match="zero frames"):
        m.predict(np.zeros((0, 8, 8, 3), dtype=np.uint8), "describe")
    with pytest.raises(CheckpointError, match="neither a preset"):
        VideoGLaMM.from_pretrained(tmp_path / "nowhere")
    m.save_pretrained(tmp_path / "broken")
    (tmp_path / "broken" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        VideoGLaMM.from_pretrained(tmp_path / "broken")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CheckpointError, match="'llama' model"):
        VideoGLaMM.from_pretrained(other)


def test_answer_without_seg_has_no_masks(two_seg_model):
    result = two_seg_model.predict(_video(), "describe", max_new_tokens=1)
    assert result.text and ANSWER.startswith(result.text) and "[SEG]" not in result.text
    assert result.masks == [] and result.scores.shape == (0, 7)


def test_every_seg_gets_a_track(two_seg_model):
    # The official inference tracks every [SEG] (a GCG answer may name more objects than training supervises).
    from videoglamm.modeling.predict import PredictOptions, _Source, _stream_for, collect

    k = two_seg_model.config.sam2.max_objects + 3
    seg = torch.randn(k, two_seg_model.config.seg_projector.out_dim)
    for mode in ("track", "framewise"):
        opts = PredictOptions(mask_mode=mode)
        result = collect(_stream_for(two_seg_model, two_seg_model.processor, _Source(_video()), "x", seg, [0], opts))
        assert len(result.masks) == k and result.scores.shape == (k, 7)


@pytest.mark.parametrize("fps, t", [(4.0, 20), (1.0, 80), (2.5, 12)])
def test_video_files_are_decoded_for_the_encoders_as_the_official_demo(two_seg_model, tmp_path, fps, t):
    # The official `load_video`: every round(fps / 1)-th frame from 0, then linspace(..., 64, dtype=int)
    # when more remain; the encoders take linspace(dtype=int) of those, a short pool padded with its last.
    path = tmp_path / "clip.mp4"
    write_video(path, _video(t=t, w=64 + 4 * t), fps=fps)
    pool = list(range(0, t, int(round(fps / 1))))
    if len(pool) > 64:
        pool = [pool[i] for i in np.linspace(0, len(pool) - 1, 64, dtype=int)]
    n = two_seg_model.config.sampling.encoder_frames
    if len(pool) > n:
        expected = [pool[i] for i in np.linspace(0, len(pool) - 1, n, dtype=int)]
    else:
        expected = pool + [pool[-1]] * (n - len(pool))
    result = two_seg_model.predict(str(path), "describe", max_new_tokens=4)
    assert result.frame_indices == expected
    assert all(m.shape[0] == t for m in result.masks)  # masks still cover every frame


def test_answers_stop_at_every_phi3_stop_id(two_seg_model):
    # Phi-3's generation config stops on <|endoftext|> (32000), <|assistant|> (32001) and <|end|> (32007).
    from videoglamm.modeling.predict import stop_token_ids

    tok = two_seg_model.processor.tokenizer
    vocab = tok.get_vocab()
    assert stop_token_ids(two_seg_model.config, tok) == {vocab["<|endoftext|>"], vocab["<|assistant|>"], vocab["<|end|>"]}
    # A tag the tokenizer lacks is not a stop id (convert_tokens_to_ids would have given <unk>).
    class NoAssistant:
        def get_vocab(self):
            return {k: v for k, v in vocab.items() if k != "<|assistant|>"}

    assert vocab["<|assistant|>"] not in stop_token_ids(two_seg_model.config, NoAssistant())
