"""The one sample type every reader returns and the processor consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from videoglamm.data.templates import SEG_TOKEN
from videoglamm.errors import InputError, ShapeMismatchError, TokenCountError

TASKS = ("rvos", "gcg", "vg", "image_seg", "vqa")
# The processor inserts the visual placeholder itself; a reader that leaves one in would double it.
_PLACEHOLDERS = ("<video>", "<image>")


@dataclass
class Sample:
    """One training/eval example: frames, one (question, answer) turn and the masks of its `[SEG]`s.

    Attributes:
        frames: RGB frames, all the same size, in temporal order; T >= 1.
        prompt: user question, without any video/image placeholder.
        answer: assistant answer; one `[SEG]` per mask, in order (GCG: `<p> phrase </p> [SEG]`).
        masks: bool (num_seg, T, H, W) aligned with `frames`; None or (0, T, H, W) without `[SEG]`.
        task: one of `TASKS`.
        source: dataset name + video id + expression id, for warnings and logs.
        frame_indices: index of each frame in the original video, strictly increasing.
        boxes: float (num_seg, T, 4) xyxy in pixels, NaN where the object is absent (grounding).
        time_span: (first, last) position in `frames` (inclusive) of the grounded moment.
        meta: free-form extras. Keys used by readers: "kind", "exp_id", "video", "mask_from_box",
            "mask_valid" (bool (num_seg, T): False where a frame has no annotation, so its mask
            must not be supervised; absent means every frame is annotated).

    Raises:
        InputError: on construction, if any of the invariants above does not hold.
    """

    frames: list[Image.Image]
    prompt: str
    answer: str
    masks: torch.Tensor | None
    task: str
    source: str
    frame_indices: list[int]
    boxes: torch.Tensor | None = None
    time_span: tuple[int, int] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_seg(self) -> int:
        return self.answer.count(SEG_TOKEN)

    def validate(self) -> None:
        """Check every invariant of the contract; raise `InputError` naming `source` if one fails."""
        where = f"sample {self.source!r}"
        if self.task not in TASKS:
            raise InputError(f"{where}: task {self.task!r} is not one of {TASKS}")
        if not self.frames:
            raise InputError(f"{where}: has no frames; a sample needs T >= 1")
        size = self.frames[0].size
        for t, frame in enumerate(self.frames):
            if frame.mode != "RGB" or frame.size != size:
                raise ShapeMismatchError(
                    f"{where}: frame {t} is {frame.mode} {frame.size}, expected RGB {size} like frame 0"
                )
        num_frames = len(self.frames)
        if len(self.frame_indices) != num_frames:
            raise ShapeMismatchError(
                f"{where}: {len(self.frame_indices)} frame_indices for {num_frames} frames"
            )
        if any(b <= a for a, b in zip(self.frame_indices, self.frame_indices[1:])):
            raise InputError(f"{where}: frame_indices {self.frame_indices} are not strictly increasing")
        for tag in _PLACEHOLDERS:
            if tag in self.prompt:
                raise InputError(f"{where}: prompt contains {tag!r}; the processor adds placeholders")
        if SEG_TOKEN in self.prompt:
            raise TokenCountError(f"{where}: prompt contains {SEG_TOKEN!r}; only answers may")
        self._validate_masks(where, num_frames, (size[1], size[0]))
        self._validate_boxes(where, num_frames)
        if self.time_span is not None:
            first, last = self.time_span
            if not 0 <= first <= last < num_frames:
                raise InputError(f"{where}: time_span {self.time_span} outside frames 0..{num_frames - 1}")

    def _validate_masks(self, where: str, num_frames: int, hw: tuple[int, int]) -> None:
        num_seg = self.num_seg
        if self.masks is None:
            if num_seg:
                raise TokenCountError(f"{where}: answer has {num_seg} {SEG_TOKEN} but masks is None")
            return
        expected = (num_seg, num_frames, *hw)
        if self.masks.dtype != torch.bool:
            raise InputError(f"{where}: masks dtype is {self.masks.dtype}, expected torch.bool")
        if tuple(self.masks.shape) != expected:
            count_wrong = self.masks.ndim == 4 and self.masks.shape[0] != num_seg
            error = TokenCountError if count_wrong else ShapeMismatchError
            raise error(f"{where}: masks shape {tuple(self.masks.shape)}, expected {expected} "
                        f"(num_seg, T, H, W) for {num_seg} {SEG_TOKEN} in the answer")
        valid = self.meta.get("mask_valid")
        if valid is not None and tuple(valid.shape) != expected[:2]:
            raise ShapeMismatchError(f"{where}: meta['mask_valid'] shape {tuple(valid.shape)}, "
                                     f"expected {expected[:2]}")

    def _validate_boxes(self, where: str, num_frames: int) -> None:
        if self.boxes is None:
            return
        expected = (self.num_seg, num_frames, 4)
        if tuple(self.boxes.shape) != expected or not self.boxes.is_floating_point():
            raise ShapeMismatchError(f"{where}: boxes {self.boxes.dtype} {tuple(self.boxes.shape)}, "
                                     f"expected float {expected} (num_seg, T, xyxy)")
