"""Synthetic referring videos: determinism, readability by the real readers, and correct expressions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from videoglamm.cli import main
from videoglamm.data import SEG_TOKEN, PhraseGCGReader, RefVOSReader
from videoglamm.data.synthetic import COLOURS, DIRECTIONS, generate_video, generate_videos
from videoglamm.data.synthetic_io import write_dataset

NUM_VIDEOS = 6


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("synth") / "ds", NUM_VIDEOS, seed=11, progress=False)


def test_same_seed_gives_identical_bytes(synth_dir, tmp_path):
    again = write_dataset(tmp_path / "again", NUM_VIDEOS, seed=11, progress=False)
    other = write_dataset(tmp_path / "other", NUM_VIDEOS, seed=12, progress=False)
    assert tree_bytes(again) == tree_bytes(synth_dir)
    assert tree_bytes(other) != tree_bytes(synth_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "other"]  # no temp folder left behind


def test_in_memory_generator_is_deterministic():
    a, b = generate_video(5, 2), generate_video(5, 2)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.labels, b.labels)
    assert a.expressions == b.expressions and a.caption == b.caption
    assert a.frames.shape == (12, 96, 128, 3) and a.labels.shape == (12, 96, 128)


def test_ref_ytvos_reader_loads_synth_output(synth_dir):
    reader = RefVOSReader.from_root(synth_dir, num_frames=None)
    videos = {v.name: v for v in generate_videos(NUM_VIDEOS, seed=11)}
    assert len(reader) == sum(len(v.expressions) for v in videos.values())
    assert reader.scan() == len(reader)
    for i in range(len(reader)):
        sample = reader[i]
        video = videos[sample.meta["video"]]
        exp = video.expressions[int(sample.meta["exp_id"])]
        assert sample.meta["kind"] == exp["kind"] and sample.meta["exp"] == exp["exp"]
        expected = torch.from_numpy(video.object_masks(int(exp["obj_id"])))
        assert torch.equal(sample.masks[0], expected)


def test_gcg_reader_loads_synth_captions(synth_dir):
    reader = PhraseGCGReader.ytvos(synth_dir / "gcg", synth_dir, num_frames=6)
    videos = generate_videos(NUM_VIDEOS, seed=11)
    assert len(reader) == NUM_VIDEOS
    for sample, video in zip(reader, videos):
        assert sample.answer.count(SEG_TOKEN) == len(video.objects) == sample.masks.shape[0]
        for obj in video.objects:
            assert f"<p> {obj.name} </p> {SEG_TOKEN}" in sample.answer
        assert all(sample.masks[k].any() for k in range(len(video.objects)))


def test_absent_frames_have_empty_masks_and_time_expressions_are_right():
    videos = generate_videos(40, seed=0)
    late_or_early = 0
    for video in videos:
        for obj in video.objects:
            masks = video.object_masks(obj.obj_id)
            present = masks.any(axis=(1, 2))
            assert present.tolist() == [obj.first <= t <= obj.last for t in range(len(masks))]
            late_or_early += obj.first > 0 or obj.last < len(masks) - 1
        for exp in video.expressions:
            obj = video.objects[int(exp["obj_id"]) - 1]
            others = [o for o in video.objects if o is not obj]
            if exp["exp"] == "the object that appears last":
                assert all(o.first < obj.first for o in others)
            elif exp["exp"] == "the object that disappears first":
                assert all(o.last > obj.last for o in others)
    assert late_or_early > 5  # the set really exercises absent frames


def test_motion_and_appearance_expressions_describe_their_object():
    for video in generate_videos(40, seed=1):
        motions = [e for e in video.expressions if e["kind"] == "motion"]
        assert len({e["exp"].split()[-1] for e in motions}) == len(motions)  # directions unique per video
        for exp in video.expressions:
            masks = video.object_masks(int(exp["obj_id"]))
            if exp["kind"] == "appearance":
                colour, _ = exp["exp"].removeprefix("the ").split()
                assert (video.frames[masks] == COLOURS[colour]).all()
            elif exp["kind"] == "motion":
                frames = np.flatnonzero(masks.any(axis=(1, 2)))
                (y0, x0), (y1, x1) = (np.argwhere(masks[t]).mean(axis=0) for t in (frames[0], frames[-1]))
                dx, dy = DIRECTIONS[exp["exp"].split()[-1]]
                along = (x1 - x0) * dx + (y1 - y0) * dy
                across = abs((x1 - x0) * dy) + abs((y1 - y0) * dx)
                assert along > 8 and across < 1, (video.name, exp, along, across)


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["synth", "--out", str(out), "--videos", "2", "--seed", "4", "--frames", "5", "--size", "48x64",
            "--no-progress"]
    assert main(args) == 0
    names = sorted(p.name for p in (out / "JPEGImages" / "synth_0001").iterdir())
    assert names == [f"{t:05d}.jpg" for t in range(5)]
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
