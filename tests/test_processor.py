import pytest
import torch
from PIL import Image

from conftest import random_video
from videoglamm.errors import InputError, ShapeMismatchError, TokenCountError
from videoglamm.processing.frames import sample_frame_indices
from videoglamm.processing.tokens import IGNORE_INDEX


def test_batch_shapes_and_labels(tiny_processor, tiny_config):
    videos = [random_video(t=6), random_video(t=11, h=30, w=30, seed=1)]
    masks = [torch.zeros(1, 6, 40, 52, dtype=torch.bool), torch.ones(2, 11, 30, 30, dtype=torch.bool)]
    answers = ["It is [SEG].", "<p> a </p> [SEG] and <p> b </p> [SEG]."]
    batch = tiny_processor(videos=videos, prompts=["what is red?", "describe"], answers=answers, masks=masks)
    cfg = tiny_config
    te = cfg.sampling.encoder_frames
    assert batch["pixel_values_image"].shape == (2, te, 3, cfg.image_tower.image_size, cfg.image_tower.image_size)
    assert batch["pixel_values_video"].shape == (2, te, 3, cfg.video_tower.image_size, cfg.video_tower.image_size)
    assert batch["sam_pixel_values"].shape == (2, cfg.sampling.sam_frames, 3, cfg.sam2.image_size, cfg.sam2.image_size)
    assert batch["masks"][1].shape == (2, cfg.sampling.sam_frames, 30, 30)
    ids, labels = batch["input_ids"], batch["labels"]
    assert ((ids == cfg.tokens.video_token_id).sum(1) == cfg.num_visual_tokens).all()
    tok = tiny_processor.tokenizer
    for row in range(2):
        supervised = ids[row][labels[row] != IGNORE_INDEX]
        assert tok.decode(supervised) == answers[row] + "<|end|>"
        assert labels[row][ids[row] == cfg.tokens.video_token_id].eq(IGNORE_INDEX).all()
    lengths = batch["attention_mask"].sum(1)
    short = int(lengths.argmin())
    n = int(lengths[short])
    assert lengths.min() < lengths.max()  # the two answers differ in length, so one row is padded
    assert (batch["attention_mask"][short, :n] == 1).all() and (batch["attention_mask"][short, n:] == 0).all()
    assert (labels[short, n:] == IGNORE_INDEX).all() and (ids[short, n:] == cfg.llm.pad_token_id).all()
    assert batch["original_sizes"].tolist() == [[40, 52], [30, 30]]


def test_placeholder_goes_first_unless_given(tiny_processor, tiny_config):
    vid = tiny_config.tokens.video_token_id
    ids, _ = tiny_processor.tokenize("hello there")
    first = ids.index(vid)
    text_before = tiny_processor.tokenizer.decode(ids[1:first])
    assert text_before.endswith("<|user|>\n")
    ids2, _ = tiny_processor.tokenize("look: <video> what moves?")
    assert tiny_processor.tokenizer.decode(ids2[1 : ids2.index(vid)]).endswith("look: ")
    with pytest.raises(TokenCountError, match="2 <video>"):
        tiny_processor.tokenize("<video> and <video>")


def test_pil_and_array_inputs_agree(tiny_processor):
    arr = random_video(t=5)
    a = tiny_processor(videos=[arr], prompts=["x"])
    b = tiny_processor(videos=[[Image.fromarray(f) for f in arr]], prompts=["x"])
    assert torch.equal(a["pixel_values_image"], b["pixel_values_image"])
    assert torch.equal(a["input_ids"], b["input_ids"])


def test_bad_inputs(tiny_processor):
    with pytest.raises(InputError, match="zero frames"):
        tiny_processor(videos=[[]], prompts=["x"])
    mixed = [Image.new("RGB", (10, 10)), Image.new("RGB", (12, 10))]
    with pytest.raises(ShapeMismatchError, match="mixed sizes"):
        tiny_processor(videos=[mixed], prompts=["x"])
    video = random_video(t=4)
    with pytest.raises(TokenCountError, match="2 \\[SEG\\] but 1 masks"):
        tiny_processor(videos=[video], prompts=["x"], answers=["[SEG] [SEG]"],
                       masks=[torch.zeros(1, 4, 40, 52, dtype=torch.bool)])
    with pytest.raises(ShapeMismatchError, match="masks have"):
        tiny_processor(videos=[video], prompts=["x"], answers=["[SEG]"],
                       masks=[torch.zeros(1, 4, 41, 52, dtype=torch.bool)])
    with pytest.raises(InputError, match="empty"):
        tiny_processor(videos=[video], prompts=["  "])
    with pytest.raises(InputError, match="batch lengths"):
        tiny_processor(videos=[video, video], prompts=["x"])


def test_frame_sampling():
    assert sample_frame_indices(3, 5, "spread") == [0, 0, 1, 2, 2]
    assert sample_frame_indices(3, 5, "first") == [0, 1, 2, 2, 2]
    assert sample_frame_indices(4, 8, "all") == [0, 1, 2, 3]
    assert sample_frame_indices(10, 2, indices=[7, 2]) == [2, 7]
    with pytest.raises(InputError, match="outside"):
        sample_frame_indices(10, 2, indices=[10])
    with pytest.raises(InputError, match="unknown frame sampling"):
        sample_frame_indices(10, 2, "random")
