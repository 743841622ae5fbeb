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


def overfit(model, batch, steps, lr=1e-2):
    """Teach `model` one batch (a few seconds for the tiny preset), then put it in eval mode."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def random_video(t=6, h=40, w=52, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def train_data(tmp_path_factory):
    """A small synthetic Ref-YTVOS + GCG set for training tests (written once per session)."""
    from videoglamm.data.synthetic_io import write_dataset

    return write_dataset(tmp_path_factory.mktemp("train_data") / "synth", 6, seed=5, num_frames=8, size=(48, 64),
                         progress=False)


def tiny_recipe(data_root, output_dir, **train):
    """A training recipe dict for the tiny model on `data_root`; `train` overrides the train section."""
    return {
        "model": {"preset": "videoglamm-tiny", "overrides": {"sam2": {"train_all": True}}, "lora": False,
                  "train_llm": True},
        "data": {"seed": 0, "datasets": [
            {"name": "rvos", "reader": "RefVOSReader", "constructor": "from_root",
             "args": {"root": str(data_root), "num_frames": 8}, "weight": 3},
            {"name": "gcg", "reader": "PhraseGCGReader", "constructor": "ytvos",
             "args": {"captions_dir": str(data_root / "gcg"), "split_root": str(data_root), "num_frames": 8},
             "weight": 1}]},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "train": {"output_dir": str(output_dir), "max_steps": 3, "micro_batch_size": 1, "log_every": 1,
                  "save_every": 100, "progress": False, **train},
    }
