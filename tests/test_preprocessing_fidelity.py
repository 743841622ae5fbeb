"""The three encoder views equal what the official preprocessing computes with the libraries it calls
(reference videoglamm.md §2.1): transformers' PIL `CLIPImageProcessor` (shortest side 336, centre crop),
`cv2.resize` to 224 then ImageNet statistics in float64 (InternVideo2), and SAM's `ResizeLongestSide`
(PIL bilinear, each side rounded half up) + normalisation on the 0-255 scale + bilinear interpolation to
1024 x 1024 (`utils/sam_transforms.py`, model_type "sam2"). Each oracle is written out here from those steps."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from videoglamm import VideoGLaMMProcessor
from videoglamm.config import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD
from videoglamm.processing.transforms import clip_transform, internvideo_transform, sam2_transform

SIZES = [(360, 640), (480, 270), (333, 500), (64, 96)]


def _frames(h: int, w: int, t: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], -1)
    return np.clip(base[None] + rng.normal(0, 25, (t, h, w, 3)), 0, 255).astype(np.uint8)


def _rel(ours: torch.Tensor, official: torch.Tensor) -> float:
    assert ours.shape == official.shape and ours.dtype == torch.float32
    return float((ours - official).abs().max() / official.abs().max())


def _official_clip(frames: np.ndarray, size: int) -> torch.Tensor:
    try:
        from transformers import CLIPImageProcessorPil as Processor  # transformers 5: the PIL implementation
    except ImportError:
        from transformers import CLIPImageProcessor as Processor  # 4.x (the official 4.41) is PIL already
    proc = Processor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                     image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD), resample=Image.BICUBIC)
    return proc(images=[Image.fromarray(f) for f in frames], return_tensors="pt")["pixel_values"]


def _official_internvideo(frames: np.ndarray, size: int) -> torch.Tensor:
    import cv2

    mean, std = np.array([0.485, 0.456, 0.406]).reshape(1, 1, 3), np.array([0.229, 0.224, 0.225]).reshape(1, 1, 3)
    views = [((cv2.resize(f, (size, size)) / 255.0 - mean) / std).transpose(2, 0, 1) for f in frames]
    return torch.from_numpy(np.stack(views)).float()


def _official_sam(frames: np.ndarray, size: int) -> torch.Tensor:
    from torchvision.transforms.functional import resize, to_pil_image

    mean = torch.Tensor([123.675, 116.28, 103.53]).view(-1, 1, 1)
    std = torch.Tensor([58.395, 57.12, 57.375]).view(-1, 1, 1)
    out = []
    for frame in frames:
        h, w = frame.shape[:2]
        scale = size * 1.0 / max(h, w)
        target = (int(h * scale + 0.5), int(w * scale + 0.5))
        x = torch.from_numpy(np.array(resize(to_pil_image(frame), target))).permute(2, 0, 1).contiguous()
        x = (x - mean) / std
        out.append(F.interpolate(x.unsqueeze(0), (size, size), mode="bilinear").squeeze(0))
    return torch.stack(out)


@pytest.mark.parametrize("h, w", SIZES)
def test_clip_view_is_clip_image_processor(h, w):
    frames = _frames(h, w)
    assert _rel(clip_transform(torch.from_numpy(frames), 336, CLIP_MEAN, CLIP_STD), _official_clip(frames, 336)) <= 1e-5


@pytest.mark.parametrize("h, w", SIZES)
def test_internvideo_view_is_cv2_resize(h, w):
    frames = _frames(h, w)
    ours = internvideo_transform(torch.from_numpy(frames), 224, IMAGENET_MEAN, IMAGENET_STD)
    assert _rel(ours, _official_internvideo(frames, 224)) <= 1e-5


@pytest.mark.parametrize("h, w", SIZES)
def test_sam2_view_is_resize_longest_side_then_interpolate(h, w):
    frames = _frames(h, w, t=1)
    ours = sam2_transform(torch.from_numpy(frames), 1024, IMAGENET_MEAN, IMAGENET_STD)
    assert _rel(ours, _official_sam(frames, 1024)) <= 1e-5


def test_the_processor_uses_the_official_views():
    proc = VideoGLaMMProcessor.from_preset("videoglamm-tiny")
    cfg = proc.config
    frames = _frames(48, 80, t=3)
    image, video = proc.encoder_views(torch.from_numpy(frames))
    assert _rel(image, _official_clip(frames, cfg.image_tower.image_size)) <= 1e-5
    assert _rel(video, _official_internvideo(frames, cfg.video_tower.image_size)) <= 1e-5
    assert _rel(proc.sam_transform(torch.from_numpy(frames)), _official_sam(frames, cfg.sam2.image_size)) <= 1e-5
