"""The web demo's request logic without a browser: `videoglamm.serve.session` and `render`.

Every output is checked against a direct `predict()` of the same model on the same file, decoded with
the libraries the formats belong to (pycocotools for RLE, PIL for PNG, PyAV for mp4, html.parser).
"""

import html.parser
import json
import threading
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from videoglamm.errors import InputError, VideoReadError
from videoglamm.serve.render import (
    ABSENT, LABEL_WIDTH, PENDING, ROW_HEIGHT, answer_html, cell_width, presence_strip, strip_width, zip_folder,
)
from videoglamm.serve.session import (
    SAMPLE_FRAMES, SAMPLE_INDEX, SAMPLE_SEED, SAMWISE, VIDEOGLAMM, DemoRequest, DemoResult, ModelCache, Update,
    check_upload, run_request,
)
from videoglamm.visualize import PALETTE, write_video

QUESTION = "What is the yellow circle in this video? Please respond with segmentation masks."


@pytest.fixture(scope="module")
def models():
    cache = ModelCache("videoglamm-tiny-synthetic", "samwise-tiny")
    cache.get(VIDEOGLAMM)
    return cache


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from videoglamm.data.synthetic import generate_video

    path = tmp_path_factory.mktemp("video") / "shapes.mp4"
    write_video(path, generate_video(SAMPLE_SEED, SAMPLE_INDEX, num_frames=SAMPLE_FRAMES).frames)
    return path


def _run(request, models, root, **kw):
    items = list(run_request(request, models, root, **kw))
    assert isinstance(items[-1], DemoResult) and all(isinstance(i, Update) for i in items[:-1])
    return items[:-1], items[-1]


def _decoded(result_json):
    from pycocotools import mask as mask_utils

    objects = json.loads(result_json.read_text())["objects"]
    return [np.stack([mask_utils.decode({"size": m["size"], "counts": m["counts"].encode()}) for m in obj["masks"]])
            for obj in objects]


def _frames(mp4):
    import av

    with av.open(str(mp4)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_upload_matches_a_direct_predict(models, video, tmp_path):
    updates, result = _run(DemoRequest(str(video), False, VIDEOGLAMM, QUESTION), models, tmp_path, min_interval=0)
    direct = models.get(VIDEOGLAMM).model.predict(str(video), QUESTION)
    assert result.text == direct.text and result.phrases == direct.phrases
    assert "yellow circle" in result.text
    got = _decoded(result.result_json)
    assert len(got) == len(direct.masks) >= 1
    for mine, theirs in zip(got, direct.masks):
        np.testing.assert_array_equal(mine.astype(bool), theirs.numpy())
    presence = np.stack([m.flatten(1).any(1).numpy() for m in direct.masks])
    np.testing.assert_array_equal(result.presence, presence)
    assert presence.any()
    # Streamed: one update per frame here (min_interval=0), each with the presence of the frames so far.
    masks_updates = [u for u in updates if u.stage == "masks"]
    assert [u.done for u in masks_updates] == list(range(1, SAMPLE_FRAMES + 1))
    for u in masks_updates:
        np.testing.assert_array_equal(u.presence[:, :u.done], presence[:, :u.done])
        assert not u.presence[:, u.done:].any() and u.frame.shape == (96, 128, 3)
    with zipfile.ZipFile(result.masks_zip) as archive:
        names = sorted(archive.namelist())
        assert names == sorted(f"{k}/{t:05d}.png" for k in range(len(got)) for t in range(SAMPLE_FRAMES))
        with archive.open("0/00007.png") as f:
            np.testing.assert_array_equal(np.asarray(Image.open(f)) > 0, direct.masks[0][7].numpy())
    assert len(_frames(result.overlay)) == SAMPLE_FRAMES
    assert result.folder.parent == tmp_path and result.overlay.is_relative_to(result.folder)


def test_sample_video_is_the_demo_commands(models, tmp_path):
    from videoglamm.data.synthetic import generate_video

    _, result = _run(DemoRequest(None, True, VIDEOGLAMM, QUESTION), models, tmp_path)
    frames = np.stack(_frames(result.video)).astype(np.int16)
    expected = generate_video(2026, 0, num_frames=24).frames.astype(np.int16)  # `videoglamm demo`'s video
    assert frames.shape == expected.shape and np.abs(frames - expected).mean() < 8  # H.264 is lossy
    direct = models.get(VIDEOGLAMM).model.predict(str(result.video), QUESTION)
    assert result.text == direct.text


def test_two_users_at_once_get_their_own_results(models, video, tmp_path):
    questions = [QUESTION, "What is the red triangle in this video? Please respond with segmentation masks."]
    results: dict[int, DemoResult] = {}

    def user(i):
        results[i] = _run(DemoRequest(str(video), False, VIDEOGLAMM, questions[i]), models, tmp_path, min_interval=0)[1]

    threads = [threading.Thread(target=user, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results[0].folder != results[1].folder
    for i, q in enumerate(questions):
        direct = models.get(VIDEOGLAMM).model.predict(str(video), q)
        assert results[i].text == direct.text
        for mine, theirs in zip(_decoded(results[i].result_json), direct.masks):
            np.testing.assert_array_equal(mine.astype(bool), theirs.numpy())
    assert results[0].text != results[1].text


def test_samwise_tracks_one_expression_per_line(models, video, tmp_path):
    _, result = _run(DemoRequest(str(video), False, SAMWISE, "the yellow circle\n\n  the red triangle \n"),
                     models, tmp_path)
    assert result.phrases == ["the yellow circle", "the red triangle"]
    assert any("RANDOM weights" in n for n in result.notes)  # samwise-tiny is an architecture preset
    direct = models.get(SAMWISE).model.predict(str(video), ["the yellow circle", "the red triangle"])
    for mine, theirs in zip(_decoded(result.result_json), direct):
        np.testing.assert_array_equal(mine.astype(bool), theirs.masks[0].numpy())


def test_bad_uploads_raise_the_clis_errors(models, tmp_path):
    from videoglamm.processing.video_io import VideoFile

    def first(request):
        return next(iter(run_request(request, models, tmp_path)))

    with pytest.raises(InputError, match="upload one"):
        first(DemoRequest(None, False, VIDEOGLAMM, QUESTION))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.mp4 is empty"):
        first(DemoRequest(str(empty), False, VIDEOGLAMM, QUESTION))
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    with pytest.raises(VideoReadError) as cli_error:
        VideoFile(text)  # what `videoglamm predict` reads the file with
    with pytest.raises(VideoReadError) as web_error:
        list(run_request(DemoRequest(str(text), False, VIDEOGLAMM, QUESTION), models, tmp_path))
    assert str(web_error.value) == str(cli_error.value)
    with pytest.raises(InputError, match="type a question"):
        first(DemoRequest(str(text), False, VIDEOGLAMM, "   "))
    with pytest.raises(InputError, match="referring expression"):
        first(DemoRequest(str(text), False, SAMWISE, "\n \n"))
    with pytest.raises(InputError, match="unknown model"):
        first(DemoRequest(str(text), False, "GPT", QUESTION))
    assert check_upload(str(text)) == text
    assert not [p for p in tmp_path.rglob("result")]  # nothing half-written


class _Marks(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.marks, self.raw, self._in = [], "", None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "mark":
            self.marks.append([attrs["data-object"], attrs["style"], ""])
            self._in = "mark"
        elif tag == "code":
            self._in = "code"

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "mark":
            self.marks[-1][2] += data
        elif self._in == "code":
            self.raw += data


def test_answer_html_colours_each_phrase_like_its_mask():
    text = "There is <p> a red circle </p> [SEG] and <p> the <b> square </p> [SEG]."
    parser = _Marks()
    parser.feed(answer_html(text, ["a red circle", "the <b> square"]))
    assert [m[2] for m in parser.marks] == ["a red circle", "the <b> square"]  # escaped, not markup
    for k, (obj, style, _) in enumerate(parser.marks):
        r, g, b = (int(c) for c in PALETTE[k])
        assert obj == str(k) and f"background: rgb({r}, {g}, {b})" in style
    assert parser.raw == text
    samwise = _Marks()
    samwise.feed(answer_html("the dog\nthe cat", ["the dog", "the cat"]))
    assert [m[2] for m in samwise.marks] == ["the dog", "the cat"]


def test_presence_strip_cells():
    presence = np.array([[1, 0, 1, 1, 0], [0, 0, 1, 0, 1]], dtype=bool)
    image = presence_strip(presence, ["a", "b"], done=4)
    cw = cell_width(5)
    for k in range(2):
        for t in range(5):
            y, x = k * ROW_HEIGHT + ROW_HEIGHT // 2, LABEL_WIDTH + t * cw + cw // 2
            expected = PENDING if t >= 4 else tuple(int(c) for c in PALETTE[k]) if presence[k, t] else ABSENT
            assert tuple(image[y, x]) == expected, (k, t)
    assert image.shape[0] > 2 * ROW_HEIGHT and image.dtype == np.uint8
    # A long video: frames share columns, a column is coloured when any of its frames has the object.
    long = np.zeros((1, 4000), dtype=bool)
    long[0, 2001] = True
    image = presence_strip(long, ["a"])
    width = strip_width(4000)
    assert width < 4000 and image.shape[1] == LABEL_WIDTH + width + 8
    row = image[ROW_HEIGHT // 2, LABEL_WIDTH:LABEL_WIDTH + width]
    coloured = np.flatnonzero((row == PALETTE[0].astype(np.uint8)).all(axis=1))
    assert list(coloured) == [2001 * width // 4000] and (row[row[:, 0] != PALETTE[0][0]] == ABSENT).all()


def test_zip_folder_and_writer_leave_nothing_half_done(tmp_path):
    from videoglamm.modeling.predict import StreamingPrediction
    from videoglamm.writers import PredictionWriter

    (tmp_path / "src" / "0").mkdir(parents=True)
    (tmp_path / "src" / "0" / "a.png").write_bytes(b"x")
    out = zip_folder(tmp_path / "src", tmp_path / "m.zip")
    assert zipfile.ZipFile(out).namelist() == ["0/a.png"]
    stream = StreamingPrediction(text="t", phrases=[], frame_indices=[0], num_frames=1, size=(4, 4),
                                 seg_embeddings=torch.zeros(1, 2))
    with pytest.raises(RuntimeError, match="stop"):
        with PredictionWriter(stream, tmp_path / "pred") as writer:
            writer.add(0, np.zeros((4, 4, 3), np.uint8), np.ones((1, 4, 4), bool), [0.5])
            raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zip", "src"]


def test_serve_cli_errors(monkeypatch, capsys):
    import sys

    from videoglamm.cli import main

    assert main(["serve", "--model", "samwise-tiny", "--port", "1"]) == 2
    assert "--samwise-model" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if the [demo] extra were not installed
    assert main(["serve", "--port", "1"]) == 2
    assert "pip install 'videoglamm[demo]'" in capsys.readouterr().err
