"""Referring video object segmentation: Ref-YouTube-VOS, Ref-DAVIS17 and MeViS.

Ref-YouTube-VOS layout (Ref-DAVIS17 after the usual ReferFormer conversion is the same)::

    root/meta_expressions/<split>/meta_expressions.json    (or root/meta_expressions.json)
    root/<split>/JPEGImages/<video>/<frame>.jpg             (or root/JPEGImages/...)
    root/<split>/Annotations/<video>/<frame>.png            palette PNG, pixel value = obj_id

    meta: {"videos": {video: {"frames": [name, ...],
                              "expressions": {exp_id: {"exp": text, "obj_id": "k"}}}}}

MeViS layout (one split folder)::

    split/meta_expressions.json   expressions: {exp_id: {"exp", "obj_id": [..], "anno_id": [..]}}
    split/mask_dict.json          {anno_id: [RLE or null per frame]}
    split/JPEGImages/<video>/<frame>.jpg

One sample per expression, `num_frames` uniform frames over the whole video, one `[SEG]` whose mask
is the union of the referred objects.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from videoglamm.data.base import BadSampleError, ReaderBase
from videoglamm.data.io import load_rgb, read_json
from videoglamm.data.readers.masks import MaskSource, PaletteMasks, RLEMasks, require_present
from videoglamm.data.sampling import uniform_indices
from videoglamm.data.schema import Sample
from videoglamm.data.templates import check_answer_style, rvos_question, seg_answer
from videoglamm.errors import DatasetError


@dataclass(frozen=True)
class Expression:
    video: str
    exp_id: str
    text: str
    ids: tuple[str, ...]  # palette values (Ref-YTVOS) or anno ids (MeViS), unioned into one mask
    frames: tuple[str, ...]
    kind: str | None = None


def _meta_videos(meta_path: Path, context: str = "") -> list[tuple[str, dict]]:
    """The (video, entry) pairs of a meta_expressions.json, sorted by video.

    Raises:
        DatasetError: unreadable JSON or no top-level 'videos' mapping.
    """
    try:
        meta = read_json(meta_path)
    except BadSampleError as err:
        raise DatasetError(f"{context}cannot read {meta_path}: {err}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("videos"), dict):
        raise DatasetError(f"{meta_path} has no top-level 'videos' mapping; is this a meta_expressions.json?")
    return sorted(meta["videos"].items())


def _parse_meta(meta_path: Path, id_key: str, reader: ReaderBase) -> list[Expression]:
    """Read a meta_expressions.json; a malformed expression is skipped and counted."""
    records = []
    for video, entry in _meta_videos(meta_path, f"{reader.dataset_name}: "):
        frames = tuple(sorted(entry.get("frames", [])))  # sorted: temporal order is the frame name order
        for exp_id, exp in sorted(entry.get("expressions", {}).items(), key=lambda kv: _natural(kv[0])):
            ids = exp.get(id_key) if isinstance(exp, dict) else None
            ids = [ids] if isinstance(ids, (str, int)) else ids
            if not frames or not ids or not isinstance(exp.get("exp"), str):
                problem = f"expression lacks 'exp', '{id_key}' or the video lacks frames"
                reader._index_bad(f"{meta_path} video {video} expression {exp_id}", BadSampleError(problem))
                continue
            records.append(Expression(video, str(exp_id), exp["exp"], tuple(str(i) for i in ids),
                                      frames, exp.get("kind")))
    return records


def read_expressions(meta_path: Path, id_key: str | None = None) -> list[Expression]:
    """Every expression of a meta_expressions.json with all its frames, for evaluation.

    Unlike the readers (which skip and count bad records), any malformed entry is an error, and
    object ids are optional: the server-scored splits (Ref-YouTube-VOS and MeViS `valid`) have none.

    Args:
        meta_path: the meta_expressions.json.
        id_key: "obj_id" or "anno_id" to read the ids (missing ids give an empty tuple); None skips them.

    Returns:
        Expressions sorted by video, then naturally by exp_id; `frames` in name order.

    Raises:
        FileNotFoundError: the file is missing.
        DatasetError: unreadable JSON or an entry without frames or expression text.
    """
    meta_path = Path(meta_path)
    if not meta_path.is_file():
        raise FileNotFoundError(f"meta_expressions.json not found: {meta_path}")
    records = []
    for video, entry in _meta_videos(meta_path):
        frames = tuple(sorted(entry.get("frames", [])))
        if not frames:
            raise DatasetError(f"{meta_path}: video {video!r} lists no frames")
        for exp_id, exp in sorted(entry.get("expressions", {}).items(), key=lambda kv: _natural(kv[0])):
            if not isinstance(exp, dict) or not isinstance(exp.get("exp"), str):
                raise DatasetError(f"{meta_path}: video {video!r} expression {exp_id!r} has no 'exp' text")
            ids = exp.get(id_key) if id_key else None
            ids = [ids] if isinstance(ids, (str, int)) else (ids or [])
            records.append(Expression(video, str(exp_id), exp["exp"], tuple(str(i) for i in ids), frames,
                                      exp.get("kind")))
    return records


def _natural(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 62, key)


class _ReferringReader(ReaderBase):
    """Shared loading of one referring expression; subclasses provide the layout and mask source."""

    frames_root: Path
    mask_source: MaskSource
    num_frames: int | None
    answer_style: str = "plain"

    def _record_key(self, record: Expression) -> str:
        return f"{self.frames_root / record.video} expression {record.exp_id}"

    def text_pair(self, record: Expression, rng: random.Random) -> tuple[str, str]:
        """The (question, answer) of one expression without loading its frames (`_load` draws the same)."""
        return rvos_question(rng, record.text), seg_answer(rng, record.text, self.answer_style)

    def _load(self, record: Expression, rng: random.Random) -> Sample:
        indices = uniform_indices(len(record.frames), self.num_frames)
        names = [record.frames[i] for i in indices]
        frames = [load_rgb(self.frames_root / record.video / f"{name}.jpg") for name in names]
        masks = self.mask_source.load(record.video, indices, names, frames, [record.ids])
        require_present(masks, [f"object(s) {', '.join(record.ids)} of expression {record.exp_id!r}"],
                        f"video {self.frames_root / record.video}")
        meta = {"video": record.video, "exp_id": record.exp_id, "exp": record.text}
        if record.kind is not None:
            meta["kind"] = record.kind
        prompt, answer = self.text_pair(record, rng)
        return Sample(
            frames=frames, prompt=prompt, answer=answer,
            masks=torch.from_numpy(masks), task="rvos",
            source=f"{self.dataset_name}/{record.video}/{record.exp_id}",
            frame_indices=indices, meta=meta,
        )


class RefVOSReader(_ReferringReader):
    """Ref-YouTube-VOS or Ref-DAVIS17 (palette PNG annotations).

    Args:
        meta_path: meta_expressions.json.
        frames_root: folder holding `<video>/<frame>.jpg`.
        masks_root: folder holding `<video>/<frame>.png`.
        num_frames: frames per sample, uniform over the video (None: all).
        dataset_name: "ref_ytvos", "ref_davis17", ... (used in `Sample.source`).
        answer_style: "plain" (official answers, "Sure, [SEG].") or "phrase" (the answer restates the
            expression GCG-style, "Sure, <p> the red circle </p> [SEG].", so the `[SEG]` hidden state
            follows the phrase) or "inline" ("It is the red circle[SEG].": the expression's last word is
            the token before `[SEG]`, for `hidden_source: before_seg`); see `templates.seg_answer`.
        max_bad_fraction, seed: see `ReaderBase`.

    Raises:
        DatasetError: the meta file is unreadable, empty, or too many expressions are malformed.
    """

    def __init__(self, meta_path: Path, frames_root: Path, masks_root: Path, *, num_frames: int | None = 8,
                 dataset_name: str = "ref_ytvos", answer_style: str = "plain", max_bad_fraction: float = 0.05,
                 seed: int = 0) -> None:
        super().__init__(dataset_name, max_bad_fraction=max_bad_fraction, seed=seed)
        self.answer_style = check_answer_style(answer_style)
        self.frames_root, self.num_frames = Path(frames_root), num_frames
        self.mask_source = PaletteMasks(Path(masks_root))
        self._records = _parse_meta(Path(meta_path), "obj_id", self)
        self._finish_index()

    @classmethod
    def from_root(cls, root: Path, split: str = "train", **kwargs) -> "RefVOSReader":
        """Open the official layout (`root/<split>/...`) or the flat one `videoglamm synth` writes."""
        root = Path(root)
        if (root / "meta_expressions.json").exists():
            return cls(root / "meta_expressions.json", root / "JPEGImages", root / "Annotations", **kwargs)
        meta = root / "meta_expressions" / split / "meta_expressions.json"
        if not meta.exists():
            raise DatasetError(f"no meta_expressions.json under {root} (looked for "
                               f"{root / 'meta_expressions.json'} and {meta}); pass the Ref-YouTube-VOS root")
        return cls(meta, root / split / "JPEGImages", root / split / "Annotations", **kwargs)


class MeViSReader(_ReferringReader):
    """MeViS (COCO RLE `mask_dict.json`, multi-object expressions answered with one union mask).

    Args:
        split_root: the split folder (e.g. `MeViS/train`) holding the layout above.
        num_frames: frames per sample, uniform over the video (None: all).
        dataset_name, answer_style, max_bad_fraction, seed: see `RefVOSReader`.
    """

    def __init__(self, split_root: Path, *, num_frames: int | None = 8, dataset_name: str = "mevis",
                 answer_style: str = "plain", max_bad_fraction: float = 0.05, seed: int = 0) -> None:
        super().__init__(dataset_name, max_bad_fraction=max_bad_fraction, seed=seed)
        self.answer_style = check_answer_style(answer_style)
        split_root = Path(split_root)
        self.frames_root, self.num_frames = split_root / "JPEGImages", num_frames
        self.mask_source = RLEMasks(split_root / "mask_dict.json")
        self._records = _parse_meta(split_root / "meta_expressions.json", "anno_id", self)
        self._finish_index()
