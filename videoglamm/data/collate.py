"""Collate: a list of `Sample`s -> one `VideoGLaMMProcessor` batch (what `VideoGLaMM.forward` takes).

The processor does the work (chat template, video placeholder, labels over the answer only, frame
sampling, SAM2 views, mask alignment); this module only turns the reader's PIL frames into arrays and
passes `meta["mask_valid"]` through, so frames without an annotated mask are not supervised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from videoglamm.data.schema import Sample
from videoglamm.errors import InputError

if TYPE_CHECKING:
    from videoglamm.processing.processor import VideoGLaMMProcessor


def sample_frames(sample: Sample) -> np.ndarray:
    """uint8 (T, H, W, 3) array of a sample's RGB frames."""
    return np.stack([np.asarray(frame, dtype=np.uint8) for frame in sample.frames])


class SampleCollator:
    """Callable for `DataLoader(collate_fn=...)`.

    Args:
        processor: the model's processor.
        with_masks: build SAM2 views and mask targets (training). Samples without `[SEG]` then get an
            empty (0, Ts, H, W) target.
    """

    def __init__(self, processor: "VideoGLaMMProcessor", with_masks: bool = True) -> None:
        self.processor = processor
        self.with_masks = with_masks

    def __call__(self, samples: Sequence[Sample]) -> dict[str, Any]:
        """Returns:
            the processor's batch: `input_ids`, `attention_mask`, `labels` (B, L), encoder views,
            and with masks `sam_pixel_values`, `masks` (list of float (num_seg, Ts, H, W)) and, when any
            sample carries `meta["mask_valid"]`, `mask_valid` (list of bool (num_seg, Ts)).

        Raises:
            InputError: for an empty batch; the processor's errors name the offending sample.
        """
        if not samples:
            raise InputError("cannot collate an empty list of samples")
        videos = [sample_frames(s) for s in samples]
        prompts = [s.prompt for s in samples]
        answers = [s.answer for s in samples]
        if not self.with_masks:
            return self.processor(videos=videos, prompts=prompts, answers=answers)
        masks = [s.masks if s.masks is not None and s.masks.shape[0] > 0 else None for s in samples]
        valid = [s.meta.get("mask_valid") for s in samples]
        # Only pass mask_valid when a reader set it: the common case keeps the batch as before.
        mask_valid = [None if v is None else torch.as_tensor(v, dtype=torch.bool) for v in valid]
        if all(v is None for v in mask_valid):
            mask_valid = None
        return self.processor(videos=videos, prompts=prompts, answers=answers, masks=masks,
                              mask_valid=mask_valid)
