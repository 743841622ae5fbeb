import numpy as np
import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_config():
    from videoglamm.config import VideoGLaMMConfig

    return VideoGLaMMConfig.from_preset("videoglamm-tiny")


@pytest.fixture(scope="session")
def tiny_processor():
    from videoglamm.processing.processor import VideoGLaMMProcessor

    return VideoGLaMMProcessor.from_preset("videoglamm-tiny")


def random_video(t=6, h=40, w=52, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)
