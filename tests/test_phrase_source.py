"""`seg_projector.hidden_source: phrase`: the projector reads the mean hidden state of each `[SEG]` and of the
`<p> ... </p>` phrase before it, the same in the training forward and in generation."""

import numpy as np
import pytest
import torch

from conftest import overfit
from videoglamm import VideoGLaMM, VideoGLaMMProcessor
from videoglamm.config import VideoGLaMMConfig
from videoglamm.errors import ConfigError, InputError
from videoglamm.modeling.generation import generate
from videoglamm.modeling.seg_projector import seg_hidden_states
from videoglamm.processing.tokens import END_TAG
from videoglamm.processing.tokens import phrase_spans

ANSWER = "<p> the red circle </p> [SEG] and <p>a blue box</p>[SEG] [SEG]."


def _video(t=6, h=40, w=52):
    video = np.full((t, h, w, 3), 30, dtype=np.uint8)
    for i in range(t):
        video[i, 10:22, 2 + 4 * i: 14 + 4 * i] = 230
    return video


def _config():
    return VideoGLaMMConfig.from_preset("videoglamm-tiny", seg_projector={"hidden_source": "phrase"})


def test_phrase_spans_find_the_phrase_right_before_each_seg():
    text = "x <p> the red circle </p> [SEG] y <p>blue</p>[SEG] z [SEG] </p> [SEG] <p> </p> [SEG]"
    assert [text[a:b] if (a, b) != (None, None) else None for a, b in
            [s or (None, None) for s in phrase_spans(text)]] == ["the red circle", "blue", None, None, None]


def test_processor_marks_the_phrase_tokens_of_each_seg():
    proc = VideoGLaMMProcessor(_config(), VideoGLaMMProcessor.from_preset("videoglamm-tiny").tokenizer)
    batch = proc(videos=[_video()], prompts=["describe"], answers=[ANSWER])
    ids, index = batch["input_ids"][0], batch["seg_phrase_index"][0]
    assert index.shape == ids.shape
    words = [proc.tokenizer.decode(ids[index == k].tolist()).strip() for k in (1, 2, 3)]
    assert words == ["the red circle", "a blue box", ""]
    answer_ids = ids[batch["labels"][0] != -100].tolist()[:-1]  # without <|end|>
    assert proc.generated_phrase_index(answer_ids) == index[batch["labels"][0] != -100].tolist()[:-1]


def test_other_sources_add_no_phrase_index():
    proc = VideoGLaMMProcessor.from_preset("videoglamm-tiny")
    assert "seg_phrase_index" not in proc(videos=[_video()], prompts=["describe"], answers=[ANSWER])


def test_pooled_state_is_the_mean_of_phrase_and_seg_positions():
    ids = torch.tensor([[5, 6, 7, 9, 8, 9], [5, 9, 6, 6, 6, 6]])
    index = torch.tensor([[0, 1, 1, 0, 2, 0], [0, 0, 0, 0, 0, 0]])
    hidden = torch.randn(2, 6, 4)
    got = seg_hidden_states(ids, hidden, 9, "phrase", index)
    want = torch.stack([hidden[0, [1, 2, 3]].mean(0), hidden[0, [4, 5]].mean(0), hidden[1, 1]])
    torch.testing.assert_close(got, want)
    with pytest.raises(InputError, match="seg_phrase_index"):
        seg_hidden_states(ids, hidden, 9, "phrase", None)


def test_unknown_source_is_a_config_error():
    with pytest.raises(ConfigError, match="hidden_source"):
        VideoGLaMMConfig.from_preset("videoglamm-tiny", seg_projector={"hidden_source": "mean"})


def test_generation_pools_like_the_training_forward():
    """The states pooled while generating (cached and uncached) equal the training forward's on the same ids."""
    torch.manual_seed(0)
    model = VideoGLaMM(_config())
    proc = VideoGLaMMProcessor(model.config, VideoGLaMMProcessor.from_preset("videoglamm-tiny").tokenizer)
    model.processor = proc
    batch = proc(videos=[_video()], prompts=["describe"], answers=[ANSWER])
    overfit(model, batch, steps=200)
    enc = proc.encode_video(_video())
    prompt_ids, _ = proc.tokenize("describe")
    stop = {proc.tokenizer.convert_tokens_to_ids(END_TAG), model.config.llm.eos_token_id}
    with torch.no_grad():
        visual = model.encode_video(enc.pixel_values_image[None], enc.pixel_values_video[None])
        embeds = model.embed_inputs(torch.tensor([prompt_ids]), visual)
        outs = [generate(model.language_model, embeds, seg_token_id=model.config.tokens.seg_token_id,
                         stop_ids=stop, hidden_source="phrase", max_new_tokens=30, use_cache=cache,
                         phrase_index=proc.generated_phrase_index) for cache in (True, False)]
    ids = outs[0].token_ids
    index = proc.generated_phrase_index(ids)
    assert ids == outs[1].token_ids and ids.count(model.config.tokens.seg_token_id) >= 2
    assert any(index), "the trained model should generate at least one <p> phrase </p> [SEG]"
    input_ids = torch.tensor([prompt_ids + ids])
    phrase_index = torch.tensor([[0] * len(prompt_ids) + index])
    with torch.no_grad():
        teacher = model(input_ids=input_ids, pixel_values_image=enc.pixel_values_image[None],
                        pixel_values_video=enc.pixel_values_video[None], seg_phrase_index=phrase_index).seg_embeddings[0]
        for out in outs:
            torch.testing.assert_close(model.seg_projector(out.seg_hidden), teacher, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(teacher[0], teacher[1])
