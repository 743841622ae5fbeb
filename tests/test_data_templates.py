"""Templates put one `[SEG]` per mask where it belongs; the Sample contract holds; frames stay sorted."""

from __future__ import annotations

import random

import pytest
import torch
from PIL import Image

from videoglamm.data import SEG_TOKEN, Sample
from videoglamm.data.sampling import covering_indices, uniform_indices
from videoglamm.data.templates import (
    GCG_QUESTIONS,
    IMAGE_SEG_QUESTIONS,
    RVOS_QUESTIONS,
    SEG_ANSWERS,
    SEG_PHRASE_ANSWERS,
    VG_ANSWERS,
    VG_QUESTIONS,
    anet_caption_to_answer,
    image_seg_question,
    phrase_caption_to_answer,
    rvos_question,
    seg_answer,
    vg_answer,
    word_caption_to_answer,
)
from videoglamm.errors import InputError, TokenCountError


def test_question_templates_never_hold_seg_or_placeholders_and_keep_the_phrase():
    for template in RVOS_QUESTIONS + IMAGE_SEG_QUESTIONS + GCG_QUESTIONS + VG_QUESTIONS:
        assert SEG_TOKEN not in template and "<video>" not in template and "<image>" not in template
    assert all(a.count(SEG_TOKEN) == 1 for a in SEG_ANSWERS + VG_ANSWERS)
    rng = random.Random(0)
    for _ in range(20):
        assert "the man in red" in rvos_question(rng, " the man in red. ")
        assert "cup" in image_seg_question(rng, "cup")  # the class is in the question (official bug)


def test_template_choice_is_seeded():
    draws = [(rvos_question(random.Random(s), "x"), seg_answer(random.Random(s))) for s in range(30)]
    assert draws == [(rvos_question(random.Random(s), "x"), seg_answer(random.Random(s))) for s in range(30)]
    assert len(set(draws)) > 1
    assert vg_answer(random.Random(1), 2, 5).endswith("frames:(2,5).")


def test_seg_answer_phrase_style_restates_the_expression_gcg_style():
    assert all(a.count(SEG_TOKEN) == 1 and "<p> {phrase} </p> [SEG]" in a for a in SEG_PHRASE_ANSWERS)
    for s in range(10):
        assert seg_answer(random.Random(s)) in SEG_ANSWERS  # plain stays the default
        answer = seg_answer(random.Random(s), " the red circle. ", "phrase")
        assert "<p> the red circle </p> [SEG]" in answer and answer.count(SEG_TOKEN) == 1
        inline = seg_answer(random.Random(s), "the red circle", "inline")
        assert inline.endswith("the red circle[SEG].")  # last word right before [SEG] (before_seg)
    with pytest.raises(ValueError):
        seg_answer(random.Random(0), None, "phrase")
    with pytest.raises(ValueError):
        seg_answer(random.Random(0), "x", "fancy")


def test_phrase_caption_to_answer():
    answer, groups = phrase_caption_to_answer("A [man](3) hands [two cups](1, 2) to [a woman](4).")
    assert answer == "A <p> man </p> [SEG] hands <p> two cups </p> [SEG] to <p> a woman </p> [SEG]."
    assert groups == [["3"], ["1", "2"], ["4"]]


def test_anet_caption_handles_multi_digit_seg_indices():
    answer, keys = anet_caption_to_answer("<p> a dog </p> [SEG:12] chases <p> a cat </p> [SEG:3]")
    assert answer == "<p> a dog </p> [SEG] chases <p> a cat </p> [SEG]"
    assert keys == ["[SEG:12]", "[SEG:3]"]


def test_word_caption_marks_each_grounded_word_once():
    expected = "a <p> dog </p> [SEG] chases a <p> cat </p> [SEG]"
    assert word_caption_to_answer("a dog chases a cat", [1, 4, 4]) == expected


def _sample(**overrides) -> Sample:
    fields = dict(frames=[Image.new("RGB", (8, 6))] * 2, prompt="Can you segment it?", answer="Sure, [SEG].",
                  masks=torch.zeros(1, 2, 6, 8, dtype=torch.bool), task="rvos", source="test/v/0",
                  frame_indices=[0, 4])
    fields.update(overrides)
    return Sample(**fields)


def test_sample_contract_is_enforced():
    assert _sample().num_seg == 1
    with pytest.raises(TokenCountError, match=r"\(1, 2, 6, 8\)"):
        _sample(answer="[SEG] and [SEG]")
    with pytest.raises(TokenCountError):
        _sample(masks=None)
    with pytest.raises(InputError, match="placeholder"):
        _sample(prompt="<video>\nCan you segment it?")
    with pytest.raises(InputError, match="strictly increasing"):
        _sample(frame_indices=[4, 0])
    with pytest.raises(InputError, match="torch.bool"):
        _sample(masks=torch.zeros(1, 2, 6, 8))
    with pytest.raises(InputError, match="RGB"):
        _sample(frames=[Image.new("RGB", (8, 6)), Image.new("RGB", (8, 7))])
    assert _sample(answer="A dog.", masks=None, task="vqa").num_seg == 0


@pytest.mark.parametrize("length", [1, 2, 5, 7, 16, 97])
@pytest.mark.parametrize("num_frames", [1, 2, 3, 8, 16, None])
def test_frame_indices_sorted_distinct_and_covering(length, num_frames):
    indices = uniform_indices(length, num_frames)
    assert indices == sorted(set(indices)) and 0 <= indices[0] and indices[-1] < length
    assert len(indices) == (length if num_frames is None else min(num_frames, length))
    required = [[length - 1], [length // 3]]
    covered = covering_indices(length, num_frames, required)
    assert covered == sorted(set(covered)) and all(set(g) & set(covered) for g in required)
    assert len(covered) <= max(len(indices), len(required))
