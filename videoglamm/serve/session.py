"""One web-demo request, without any web framework: video + model + prompt -> streamed updates -> files.

`run_request` validates the upload as the CLI does (the same typed errors), runs the model's
`predict_stream`, writes the CLI's outputs (answer.txt, result.json with COCO RLE, PNG masks,
overlay.mp4) through `PredictionWriter` into a folder of its own, and yields an `Update` while masks
are computed, then one `DemoResult`. Each request gets a fresh folder under the server's root, so
concurrent users never share files; a model is shared, but one request at a time holds it.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Iterator

import numpy as np

from videoglamm.errors import InputError

VIDEOGLAMM, SAMWISE = "VideoGLaMM", "SAMWISE"
KINDS = (VIDEOGLAMM, SAMWISE)
# The synthetic sample is the `videoglamm demo` command's video.
SAMPLE_SEED, SAMPLE_INDEX, SAMPLE_FRAMES = 2026, 0, 24


def _has_random_weights(kind: str, name: str) -> bool:
    """A preset name (not a folder, not a shipped model) builds the architecture with random weights."""
    if Path(name).is_dir():
        return False
    if kind == SAMWISE:
        from videoglamm.samwise.config import SAMWISE_PRESETS

        return name in SAMWISE_PRESETS
    from videoglamm.config import PRESETS

    return name in PRESETS


@dataclass
class _Loaded:
    model: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


class ModelCache:
    """The server's models, each loaded once on first use and shared by every request.

    Args:
        videoglamm: a VideoGLaMM folder, shipped name or preset.
        samwise: a SAMWISE folder or preset.
        device: where the models run.
    """

    def __init__(self, videoglamm: str = "videoglamm-tiny-synthetic", samwise: str = "samwise-tiny",
                 device: str = "cpu") -> None:
        self.names = {VIDEOGLAMM: str(videoglamm), SAMWISE: str(samwise)}
        self.device = device
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.Lock()

    def random_weights(self, kind: str) -> bool:
        """Whether `kind`'s model is an architecture preset with random weights (its masks mean nothing)."""
        return _has_random_weights(kind, self.names[_check_kind(kind)])

    def is_loaded(self, kind: str) -> bool:
        return _check_kind(kind) in self._loaded

    def get(self, kind: str) -> _Loaded:
        """The loaded model of `kind` ("VideoGLaMM" / "SAMWISE") and the lock a request holds while using it.

        Raises:
            InputError: an unknown kind; CheckpointError: the model cannot be loaded.
        """
        kind = _check_kind(kind)
        with self._lock:
            if kind not in self._loaded:
                if kind == SAMWISE:
                    from videoglamm.samwise.model import SAMWISE as Model
                else:
                    from videoglamm.modeling.videoglamm import VideoGLaMM as Model
                self._loaded[kind] = _Loaded(Model.from_pretrained(self.names[kind], device=self.device).eval())
            return self._loaded[kind]


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InputError(f"unknown model {kind!r}: choose one of {KINDS}")
    return kind


@dataclass
class DemoRequest:
    """What a user submits.

    Attributes:
        video: path of the uploaded file, or None.
        use_sample: run on the synthetic sample video instead of an upload.
        model: "VideoGLaMM" or "SAMWISE".
        prompt: a question (VideoGLaMM) or referring expressions, one per line (SAMWISE).
    """

    video: str | None
    use_sample: bool
    model: str
    prompt: str


@dataclass
class Update:
    """Progress while a request runs. `presence` is bool (K, T): object k's mask is non-empty in frame t
    (frames not computed yet are False); `frame` is the latest overlay frame, uint8 (H, W, 3), or None."""

    stage: str
    done: int
    total: int
    text: str = ""
    phrases: list[str] = field(default_factory=list)
    presence: np.ndarray | None = None
    frame: np.ndarray | None = None


@dataclass
class DemoResult:
    """A finished request: the answer and the files to show and download (all inside `folder`)."""

    folder: Path
    text: str
    phrases: list[str]
    num_frames: int
    presence: np.ndarray
    video: Path
    overlay: Path
    result_json: Path
    masks_zip: Path
    notes: list[str]


def prompts_for(kind: str, prompt: str) -> list[str]:
    """The prompts of a request: VideoGLaMM takes the whole text as one question, SAMWISE one
    referring expression per non-empty line.

    Raises:
        InputError: nothing but whitespace was typed.
    """
    if _check_kind(kind) == SAMWISE:
        lines = [line.strip() for line in (prompt or "").splitlines() if line.strip()]
        if not lines:
            raise InputError("type at least one referring expression (one per line), e.g. 'the red circle'")
        return lines
    if not (prompt or "").strip():
        raise InputError("type a question about the video, e.g. 'What is the red circle? "
                         "Please respond with segmentation masks.'")
    return [prompt.strip()]


def check_upload(path: str | None) -> Path:
    """The uploaded file, checked before the video reader sees it.

    Raises:
        InputError: no file, or an empty one. (VideoReadError for a file that is not a video comes
        from the reader, as in the CLI.)
    """
    if path is None:
        raise InputError("no video: upload one, or tick 'use the synthetic sample'")
    file = Path(path)
    if not file.is_file():
        raise InputError(f"video file not found: {file.name}; upload it again")
    if file.stat().st_size == 0:
        raise InputError(f"{file.name} is empty (0 bytes): upload a complete video file (mp4, avi, webm, ...)")
    return file


def write_sample(path: Path) -> list[str]:
    """Write the synthetic sample video to `path`; returns its objects' names ("yellow circle", ...)."""
    from videoglamm.data.synthetic import generate_video
    from videoglamm.visualize import write_video

    video = generate_video(SAMPLE_SEED, SAMPLE_INDEX, num_frames=SAMPLE_FRAMES)
    write_video(path, video.frames)
    return [obj.name for obj in video.objects]


def run_request(request: DemoRequest, models: ModelCache, root: str | Path, *,
                min_interval: float = 0.3) -> Iterator[Update | DemoResult]:
    """Run one request, yielding `Update`s (at most one per `min_interval` seconds, plus the first and
    last frame) and finally a `DemoResult`.

    Raises:
        InputError / VideoReadError / CheckpointError: as the CLI raises them, before or during the run.
    """
    from videoglamm.serve.render import zip_folder

    prompts = prompts_for(request.model, request.prompt)
    video = None if request.use_sample else check_upload(request.video)
    folder = Path(tempfile.mkdtemp(prefix="request-", dir=root))
    if video is None:
        video = folder / "sample.mp4"
        write_sample(video)
    notes = []
    if models.random_weights(request.model):
        notes.append(f"{models.names[request.model]} has RANDOM weights (an architecture preset): "
                     "its masks are meaningless; start the server with a trained model folder.")
    if not models.is_loaded(request.model):
        yield Update(f"loading {models.names[request.model]}", 0, 0)
    loaded = models.get(request.model)
    with loaded.lock:
        yield Update("answering", 0, 0)
        if request.model == SAMWISE:
            stream = loaded.model.predict_stream(str(video), prompts)
            extra = {"prompts": prompts}
        else:
            stream = loaded.model.predict_stream(str(video), prompts[0])  # the model's own defaults
            extra = {"prompt": prompts[0]}
        extra["model"] = models.names[request.model]
        presence = yield from _write(stream, folder / "result", extra, min_interval)
    result = folder / "result"
    masks_zip = zip_folder(result / "masks", folder / "masks.zip")
    yield DemoResult(folder=folder, text=stream.text, phrases=list(stream.phrases), num_frames=stream.num_frames,
                     presence=presence, video=video, overlay=result / "overlay.mp4",
                     result_json=result / "result.json", masks_zip=masks_zip, notes=notes)


def _write(stream: Any, out: Path, extra: dict[str, Any], min_interval: float) -> Generator[Update, None, np.ndarray]:
    """Write the prediction to `out`, yielding `Update`s; returns the final presence, bool (K, T)."""
    from videoglamm.writers import PredictionWriter

    k, total = stream.num_objects, stream.num_frames
    presence = np.zeros((k, total), dtype=bool)
    last = 0.0
    with PredictionWriter(stream, out, extra=extra) as writer:
        for index, frame, masks, scores in stream.with_frames():
            image = writer.add(index, frame, masks, scores)
            presence[:, index] = np.asarray(masks, dtype=bool).reshape(k, -1).any(axis=1)
            now = time.monotonic()
            if index == 0 or index == total - 1 or now - last >= min_interval:
                last = now
                yield Update("masks", index + 1, total, stream.text, list(stream.phrases), presence.copy(), image)

    return presence
