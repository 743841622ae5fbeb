"""Each reader on a tiny fixture written here in the real on-disk layout, plus the bad-input policy."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from videoglamm.data import (
    SEG_TOKEN,
    ANetEntitiesGCGReader,
    BadSampleWarning,
    BurstYTVISGCGReader,
    MeViSReader,
    PhraseGCGReader,
    RefCOCOReader,
    RefVOSReader,
    STGroundingReader,
    VideoQAReader,
)
from videoglamm.errors import DatasetError

H, W = 16, 24


def frame_value(t: int) -> int:
    return 10 * t + 5  # a frame's grey level encodes its index, so order can be checked after JPEG


def write_frame(path: Path, t: int, size: tuple[int, int] = (H, W)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), frame_value(t), np.uint8)).save(path)


def object_region(obj_id: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[2:14, 4 * (obj_id - 1): 4 * obj_id] = True  # one vertical strip per object id
    return mask


def labels_at(t: int, presence: dict[int, range]) -> np.ndarray:
    labels = np.zeros((H, W), np.uint8)
    for obj_id, frames in presence.items():
        if t in frames:
            labels[object_region(obj_id)] = obj_id
    return labels


def write_palette(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    image.save(path)


def rle(mask: np.ndarray) -> dict:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": encoded["size"], "counts": encoded["counts"].decode()}


PRESENCE = {1: range(0, 6), 2: range(3, 6)}


def write_ref_ytvos(root: Path, videos: tuple[str, ...] = ("vid_a",), split: str = "train") -> Path:
    """Official Ref-YTVOS layout; the meta lists frames out of order on purpose."""
    meta = {"videos": {}}
    for video in videos:
        names = [f"{t * 5:05d}" for t in range(6)]
        for t, name in enumerate(names):
            write_frame(root / split / "JPEGImages" / video / f"{name}.jpg", t)
            write_palette(root / split / "Annotations" / video / f"{name}.png", labels_at(t, PRESENCE))
        meta["videos"][video] = {
            "frames": names[::-1],
            "expressions": {"0": {"exp": "the left strip.", "obj_id": "1"},
                            "1": {"exp": "the late strip", "obj_id": "2"}},
        }
    (root / "meta_expressions" / split).mkdir(parents=True)
    (root / "meta_expressions" / split / "meta_expressions.json").write_text(json.dumps(meta))
    return root


def write_mevis(root: Path) -> Path:
    for t in range(6):
        write_frame(root / "JPEGImages" / "vm" / f"{t:05d}.jpg", t)
    mask_dict = {str(obj): [rle(object_region(obj)) if t in PRESENCE[obj] else None for t in range(6)]
                 for obj in (1, 2)}
    (root / "mask_dict.json").write_text(json.dumps(mask_dict))
    meta = {"videos": {"vm": {"frames": [f"{t:05d}" for t in range(6)], "expressions": {
        "0": {"exp": "both strips", "obj_id": [0, 1], "anno_id": [1, 2]}}}}}
    (root / "meta_expressions.json").write_text(json.dumps(meta))
    return root


def assert_frames_sorted(sample, expected_indices):
    assert sample.frame_indices == expected_indices
    for frame, index in zip(sample.frames, expected_indices):
        assert abs(int(np.asarray(frame)[0, 0, 0]) - frame_value(index)) <= 2


def test_ref_ytvos_reader_sorts_frames_and_builds_masks(tmp_path):
    reader = RefVOSReader.from_root(write_ref_ytvos(tmp_path), split="train", num_frames=3)
    assert len(reader) == 2
    sample = reader[1]  # "the late strip": object 2, present from frame 3
    assert_frames_sorted(sample, [0, 3, 5])
    assert sample.task == "rvos" and sample.answer.count(SEG_TOKEN) == 1
    assert "the late strip" in sample.prompt and "<video>" not in sample.prompt
    assert sample.masks.shape == (1, 3, H, W) and sample.masks.dtype == torch.bool
    assert not sample.masks[0, 0].any()
    assert torch.equal(sample.masks[0, 1], torch.from_numpy(object_region(2)))
    assert sample.meta["exp_id"] == "1" and sample.source == "ref_ytvos/vid_a/1"


def test_referring_readers_answer_style_restates_the_expression(tmp_path):
    root = write_ref_ytvos(tmp_path / "ytvos")
    plain = RefVOSReader.from_root(root, split="train", num_frames=3)[1]
    assert "<p>" not in plain.answer  # default: the official constant answers
    phrased = RefVOSReader.from_root(root, split="train", num_frames=3, answer_style="phrase")[1]
    assert "<p> the late strip </p> [SEG]" in phrased.answer and phrased.num_seg == 1
    assert torch.equal(phrased.masks, plain.masks)
    mevis = MeViSReader(write_mevis(tmp_path / "mevis"), num_frames=None, answer_style="phrase")[0]
    assert f"<p> {mevis.meta['exp']} </p> [SEG]" in mevis.answer
    with pytest.raises(ValueError, match="answer_style"):
        RefVOSReader.from_root(root, split="train", answer_style="verbose")


def test_text_view_draws_the_same_question_and_answer_as_load(tmp_path):
    root = write_ref_ytvos(tmp_path / "ytvos")
    (tmp_path / "captions").mkdir()
    (tmp_path / "captions" / "vid_a.json").write_text(json.dumps({"caption": "A [left strip](1) waits."}))
    readers = [RefVOSReader.from_root(root, split="train", num_frames=3, answer_style="phrase"),
               PhraseGCGReader.ytvos(tmp_path / "captions", root / "train", num_frames=4)]
    for reader in readers:
        for epoch in (0, 3):
            reader.set_epoch(epoch)
            for i in range(len(reader)):
                sample = reader.load(i)
                assert reader.text(i) == (sample.prompt, sample.answer)
    qa = VideoQAReader(write_videoqa(tmp_path / "qa", GOOD_QA), tmp_path / "qa" / "frames", num_frames=2)
    with pytest.raises(TypeError, match="no text-only view"):
        qa.text(0)


def test_mevis_reader_unions_objects_under_one_seg(tmp_path):
    sample = MeViSReader(write_mevis(tmp_path), num_frames=None)[0]
    assert sample.masks.shape == (1, 6, H, W)
    assert torch.equal(sample.masks[0, 0], torch.from_numpy(object_region(1)))
    assert torch.equal(sample.masks[0, 4], torch.from_numpy(object_region(1) | object_region(2)))


def test_phrase_gcg_readers_for_ytvos_mevis_and_stvg(tmp_path):
    caption = {"caption": "A [left strip](1) waits while [both strips](1, 2) glow."}
    root = write_ref_ytvos(tmp_path / "ytvos")
    (tmp_path / "captions").mkdir()
    (tmp_path / "captions" / "vid_a.json").write_text(json.dumps(caption))
    sample = PhraseGCGReader.ytvos(tmp_path / "captions", root / "train", num_frames=4)[0]
    assert sample.answer == "A <p> left strip </p> [SEG] waits while <p> both strips </p> [SEG] glow."
    assert sample.task == "gcg" and sample.masks.shape == (2, 4, H, W)
    assert sample.frame_indices == sorted(sample.frame_indices)
    assert torch.equal(sample.masks[1, -1], torch.from_numpy(object_region(1) | object_region(2)))

    write_mevis(tmp_path / "mevis")
    (tmp_path / "mcap").mkdir()
    (tmp_path / "mcap" / "vm.json").write_text(json.dumps(caption))
    sample = PhraseGCGReader.mevis(tmp_path / "mcap", tmp_path / "mevis", num_frames=None)[0]
    assert torch.equal(sample.masks[1, 5], torch.from_numpy(object_region(1) | object_region(2)))

    for t in range(6):
        write_frame(tmp_path / "vidstg" / "v1" / "frames" / f"{t:04d}.jpg", t)
        for obj in (1, 2):
            if t in PRESENCE[obj]:
                path = tmp_path / "vidstg" / "v1" / "masks" / f"{obj:03d}" / f"{t:04d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(object_region(obj).astype(np.uint8) * 255).save(path)
    (tmp_path / "vcap").mkdir()
    (tmp_path / "vcap" / "v1.json").write_text(json.dumps(caption))
    sample = PhraseGCGReader.stvg(tmp_path / "vcap", tmp_path / "vidstg", num_frames=None)[0]
    assert not sample.masks[1, 0, :, 4:8].any() and sample.masks[1, 4, 2, 5]


def test_burst_ytvis_gcg_reader_covers_every_object(tmp_path):
    for t in range(8):
        write_frame(tmp_path / "burst" / "vb" / f"{t}.jpg", t)
    only_at_1 = [rle(object_region(1)) if t == 1 else None for t in range(8)]
    always = [rle(object_region(2)) for _ in range(8)]
    data = {
        "videos": [{"id": 5, "file_names": [f"vb/{t}.jpg" for t in range(8)], "width": W, "height": H,
                    "length": 8,
                    "metadata": {"dataset": "burst"},
                    "dense_cap": {"caption": "a dog chases a cat", "token_pos": [1, 4, 4],
                                  "mask_id": [10, 11, 12]}}],
        "annotations": [{"id": 10, "segmentations": only_at_1}, {"id": 11, "segmentations": always},
                        {"id": 12, "segmentations": [rle(object_region(3))] * 8}],
    }
    (tmp_path / "train.json").write_text(json.dumps(data))
    reader = BurstYTVISGCGReader(tmp_path / "train.json", tmp_path / "burst", tmp_path / "ytvis",
                                 num_frames=3)
    sample = reader[0]
    assert sample.answer == "a <p> dog </p> [SEG] chases a <p> cat </p> [SEG]"
    assert 1 in sample.frame_indices and len(sample.frame_indices) == 3
    assert sample.masks[0].any()  # the dog is only in frame 1: the uniform grid alone would miss it
    assert torch.equal(sample.masks[1, 0], torch.from_numpy(object_region(2) | object_region(3)))


def test_anet_gcg_reader_multi_digit_seg_and_valid_frames(tmp_path):
    root = tmp_path / "anet"
    for t in range(6):
        write_frame(root / "video_frames" / "v_x" / "0" / f"{t:02d}.jpg", t)
    (root / "anns").mkdir(parents=True)
    (root / "anns" / "v_x____0.json").write_text(json.dumps({
        "refined_caption": "<p> A man </p> [SEG:12] talks to <p> a woman </p> [SEG:3].",
        "seg_token_to_obj": {"[SEG:12]": {"frame_id": 4, "bbox": [0, 0, 1, 1]},
                             "[SEG:3]": {"frame_id": 1, "bbox": [0, 0, 1, 1]}}}))
    for k, obj in ((12, 1), (3, 2)):
        path = root / "masks" / "v_x____0" / f"{k:02d}" / "mask.png"
        path.parent.mkdir(parents=True)
        Image.fromarray(object_region(obj).astype(np.uint8) * 255).save(path)
    sample = ANetEntitiesGCGReader(root, num_frames=2)[0]
    assert sample.answer == "<p> A man </p> [SEG] talks to <p> a woman </p> [SEG]."
    assert sample.frame_indices == [1, 4]
    assert sample.meta["mask_valid"].tolist() == [[False, True], [True, False]]
    assert torch.equal(sample.masks[0, 1], torch.from_numpy(object_region(1)))


def test_st_grounding_reader_boxes_and_time_span(tmp_path):
    for t in range(10):
        write_frame(tmp_path / "frames" / "a" / "b" / f"{t:05d}.jpg", t)
    data = {"videos": [{"video_id": 1, "video_path": "a/b.mp4", "caption": "what does the man hold?",
                        "start_frame": 0, "end_frame": 10, "tube_start_frame": 3, "tube_end_frame": 7,
                        "original_video_id": "b", "target_id": 0, "qtype": "interrogative"}],
            "trajectories": {"b": {"0": {str(f): {"bbox": [2, 3, 5, 4]} for f in range(3, 7)}}}}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    sample = STGroundingReader(tmp_path / "ann.json", tmp_path / "frames", num_frames=5)[0]
    assert sample.task == "vg" and sample.boxes.shape == (1, len(sample.frames), 4)
    inside = [t for t, i in enumerate(sample.frame_indices) if 3 <= i < 7]
    assert inside and sample.time_span == (inside[0], inside[-1])
    assert f"frames:({inside[0]},{inside[-1]})" in sample.answer
    assert sample.boxes[0, inside[0]].tolist() == [2.0, 3.0, 7.0, 7.0]
    outside = [t for t in range(len(sample.frames)) if t not in inside]
    assert torch.isnan(sample.boxes[0, outside]).all() and not sample.masks[0, outside].any()
    assert sample.masks[0, inside[0]].sum() == 5 * 4


def test_refcoco_reader_one_question_per_ref_with_the_phrase(tmp_path):
    write_frame(tmp_path / "images" / "img1.jpg", 0, size=(20, 30))
    instances = {"images": [{"id": 1, "file_name": "img1.jpg", "height": 20, "width": 30}],
                 "annotations": [{"id": 7, "image_id": 1, "category_id": 3,
                                  "segmentation": [[2, 2, 12, 2, 12, 10, 2, 10]]}],
                 "categories": [{"id": 3, "name": "cup"}]}
    refs = [{"ref_id": 0, "ann_id": 7, "image_id": 1, "split": "train",
             "sentences": [{"sent": "red cup on the left"}]}]
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    (tmp_path / "refs.json").write_text(json.dumps(refs))
    sample = RefCOCOReader(tmp_path / "instances.json", tmp_path / "refs.json", tmp_path / "images")[0]
    assert sample.task == "image_seg" and len(sample.frames) == 1 and sample.frame_indices == [0]
    assert "red cup on the left" in sample.prompt and sample.answer.count(SEG_TOKEN) == 1
    assert sample.masks.shape == (1, 1, 20, 30) and 80 <= int(sample.masks.sum()) <= 120


def write_videoqa(tmp_path: Path, lines: list[str]) -> Path:
    for video in ("v1", "v2"):
        for t in range(4):
            write_frame(tmp_path / "frames" / video / f"{t:03d}.jpg", t)
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD_QA = [json.dumps({"video_id": v, "q": "What happens?", "a": "A man cooks."})
           for v in ("v1", "v2", "v1", "v2")]


def test_videoqa_reader_no_masks(tmp_path):
    reader = VideoQAReader(write_videoqa(tmp_path, GOOD_QA), tmp_path / "frames", num_frames=2)
    sample = reader[0]
    assert sample.task == "vqa" and sample.masks is None and sample.frame_indices == [0, 3]


# ---- bad input: skip + warning naming the file + count; too many -> DatasetError -------------------------

def _scan_with_bad(reader, bad_path: Path, num_bad: int, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="videoglamm.data.base"):
        with pytest.warns(BadSampleWarning, match=re.escape(str(bad_path))):
            usable = reader.scan()
    assert reader.bad_log.count == num_bad and usable == len(reader) - num_bad
    assert f"{num_bad} bad sample(s) skipped so far out of {len(reader)}" in caplog.text


@pytest.mark.parametrize("damage", ["missing_frame", "unreadable_png", "mask_size", "absent_object"])
def test_bad_sample_is_skipped_warned_and_counted(tmp_path, caplog, damage):
    videos = ("v0", "v1", "v2", "v3")
    root = write_ref_ytvos(tmp_path, videos)
    bad = None
    if damage == "missing_frame":
        bad = root / "train" / "JPEGImages" / "v1" / "00010.jpg"
        bad.unlink()
    elif damage == "unreadable_png":
        bad = root / "train" / "Annotations" / "v1" / "00010.png"
        bad.write_bytes(b"\x89PNG not really")
    elif damage == "mask_size":
        bad = root / "train" / "Annotations" / "v1" / "00010.png"
        write_palette(bad, np.zeros((H + 2, W), np.uint8))
    else:
        meta_path = root / "meta_expressions" / "train" / "meta_expressions.json"
        meta = json.loads(meta_path.read_text())
        meta["videos"]["v1"]["expressions"]["1"]["obj_id"] = "7"
        meta_path.write_text(json.dumps(meta))
        bad = root / "train" / "JPEGImages" / "v1"
    reader = RefVOSReader.from_root(root, num_frames=None, max_bad_fraction=0.25)
    # A damaged file spoils both expressions of video v1; an absent object only its expression.
    _scan_with_bad(reader, bad, 1 if damage == "absent_object" else 2, caplog)
    # Index 3 (v1/1) or 2 (v1/0) is bad: asking for it returns the next usable sample.
    good = reader[3 if damage == "absent_object" else 2]
    assert good.source == "ref_ytvos/v2/0"


def test_malformed_json_line_is_skipped_warned_and_counted(tmp_path, caplog):
    path = write_videoqa(tmp_path, GOOD_QA[:2] + ['{"video_id": "v1", "q": oops'] + GOOD_QA[2:])
    with caplog.at_level(logging.WARNING, logger="videoglamm.data.base"):
        with pytest.warns(BadSampleWarning, match=re.escape(f"{path}:3")):
            reader = VideoQAReader(path, tmp_path / "frames", max_bad_fraction=0.25)
    assert len(reader) == 4 and reader.bad_log.count == 1
    assert "1 bad sample(s) skipped so far" in caplog.text


def test_too_many_bad_samples_raise_dataset_error(tmp_path):
    root = write_ref_ytvos(tmp_path, ("v0", "v1", "v2", "v3"))
    (root / "train" / "JPEGImages" / "v1" / "00000.jpg").unlink()
    reader = RefVOSReader.from_root(root, num_frames=None)  # default 0.05 tolerance: 2 of 8 is too many
    with pytest.warns(BadSampleWarning), pytest.raises(DatasetError, match="max_bad_fraction"):
        reader.scan()
    path = write_videoqa(tmp_path, GOOD_QA + ["not json"] * 2)
    with pytest.warns(BadSampleWarning), pytest.raises(DatasetError, match=r"2 of 6 samples are bad"):
        VideoQAReader(path, tmp_path / "frames")
