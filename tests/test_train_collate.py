"""Collate: where the video placeholder and `[SEG]` land, what the labels cover, and `mask_valid`."""

import numpy as np
import pytest
import torch

from videoglamm.data.collate import SampleCollator
from videoglamm.data.schema import Sample
from videoglamm.data.synthetic import generate_video
from videoglamm.errors import ShapeMismatchError
from videoglamm.processing.tokens import ASSISTANT_TAG, END_TAG, IGNORE_INDEX, USER_TAG


def _sample(answer="Sure, it is [SEG].", obj_ids=(1,), mask_valid=None, task="rvos"):
    video = generate_video(3, 1, num_frames=8, size=(48, 64))
    masks = torch.from_numpy(np.stack([video.object_masks(i) for i in obj_ids])) if obj_ids else None
    meta = {} if mask_valid is None else {"mask_valid": mask_valid}
    return Sample(frames=video.frame_images(), prompt="Can you segment the red circle in this video?",
                  answer=answer, masks=masks, task=task, source="synth/test", frame_indices=list(range(8)),
                  meta=meta)


def _ids(tok, text):
    return tok(text, add_special_tokens=False).input_ids


def test_placeholder_seg_and_labels(tiny_processor):
    cfg, tok = tiny_processor.config, tiny_processor.tokenizer
    gcg = _sample(answer="<p> a </p> [SEG] and <p> b </p> [SEG].", obj_ids=(1, 1), task="gcg")
    samples = [_sample(), gcg]
    batch = SampleCollator(tiny_processor)(samples)
    n_vis = cfg.num_visual_tokens
    for row in range(2):
        ids, labels = batch["input_ids"][row], batch["labels"][row]
        length = int(batch["attention_mask"][row].sum())
        placeholder = (ids == cfg.tokens.video_token_id).nonzero().flatten()
        # One contiguous block of placeholders right after "<|user|>\n".
        assert len(placeholder) == n_vis and int(placeholder[-1] - placeholder[0]) == n_vis - 1
        user = _ids(tok, f"{USER_TAG}\n")
        start = int(placeholder[0])
        assert ids[start - len(user):start].tolist() == user
        # [SEG] only inside the answer; the labels are exactly the answer plus <|end|>.
        supervised = (labels != IGNORE_INDEX).nonzero().flatten()
        answer_ids = _ids(tok, samples[row].answer + END_TAG)
        assert ids[supervised].tolist() == answer_ids == labels[supervised].tolist()
        assert int(supervised[-1]) == length - 1 and int(supervised[0]) == length - len(answer_ids)
        prompt_end = _ids(tok, f"{END_TAG}\n{ASSISTANT_TAG}\n")
        assert ids[int(supervised[0]) - len(prompt_end):int(supervised[0])].tolist() == prompt_end
        seg_pos = (ids == cfg.tokens.seg_token_id).nonzero().flatten()
        assert len(seg_pos) == samples[row].num_seg
        assert bool((labels[seg_pos] == cfg.tokens.seg_token_id).all())
        # Padding is never supervised.
        assert bool((labels[length:] == IGNORE_INDEX).all())
    assert [m.shape[0] for m in batch["masks"]] == [1, 2]
    assert batch["masks"][0].shape[1] == cfg.sampling.sam_frames
    assert "mask_valid" not in batch


def test_sample_without_seg_gets_empty_target(tiny_processor):
    batch = SampleCollator(tiny_processor)([_sample(answer="A red circle moves left.", obj_ids=())])
    assert batch["masks"][0].shape[0] == 0


def test_mask_valid_selects_sam_frames_and_masks_the_loss(tiny_processor, tiny_config):
    from videoglamm.modeling.videoglamm import VideoGLaMM

    valid = torch.zeros(1, 8, dtype=torch.bool)
    valid[0, 0] = True  # annotated on frame 0 only, like the ANet-Entities GCG masks
    batch = SampleCollator(tiny_processor)([_sample(mask_valid=valid)])
    sam_frames = tiny_processor.config.sampling.sam_frames
    assert batch["mask_valid"][0].shape == (1, sam_frames)
    assert batch["mask_valid"][0].tolist() == [[True] + [False] * (sam_frames - 1)]
    torch.manual_seed(0)
    model = VideoGLaMM(tiny_config).eval()
    with torch.no_grad():
        out = model(**batch)
        logits, target = out.pred_masks[0][:, :1].flatten(0, 1), batch["masks"][0][:, :1].flatten(0, 1)
        from videoglamm.modeling.losses import mask_bce

        assert torch.allclose(out.mask_bce_loss, mask_bce(logits.float(), target.float()), atol=1e-6)
        full = model(**{k: v for k, v in batch.items() if k != "mask_valid"})
        assert not torch.allclose(full.mask_bce_loss, out.mask_bce_loss)
        batch["mask_valid"] = [torch.zeros(1, sam_frames, dtype=torch.bool)]
        none = model(**batch)
        assert float(none.mask_bce_loss) == 0.0 and float(none.mask_dice_loss) == 0.0


def test_mask_valid_shape_is_checked(tiny_processor):
    video = generate_video(3, 1, num_frames=8, size=(48, 64))
    masks = torch.from_numpy(video.object_masks(1)[None])
    with pytest.raises(ShapeMismatchError, match="mask_valid"):
        tiny_processor(videos=[video.frames], prompts=["x"], answers=["[SEG]."], masks=[masks],
                       mask_valid=[torch.ones(1, 3, dtype=torch.bool)])
