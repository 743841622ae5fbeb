"""The shipped demo model loads from the package and the held-out synthetic evaluation runs on it."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "eval"))


def test_shipped_model_and_eval_synthetic():
    from eval_synthetic import evaluate

    from videoglamm.modeling.persistence import PACKAGED_MODELS
    from videoglamm.modeling.videoglamm import VideoGLaMM

    folder = PACKAGED_MODELS / "videoglamm-tiny-synthetic"
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 8 * 2**20, f"shipped model is {size / 2**20:.1f} MB"
    model = VideoGLaMM.from_pretrained("videoglamm-tiny-synthetic").eval()
    assert model.config.sam2.image_size == 128 and model.config.seg_projector.hidden_source == "phrase"
    with torch.no_grad():
        table = evaluate(model, num_videos=2, seed=1000, num_frames=8, mask_mode="framewise", progress=False)
    assert table["all"]["expressions"] > 0 and table["gcg"]["videos"] == 2
    for row in (table["all"], *(table[k] for k in table if k not in ("all", "gcg"))):
        assert 0.0 <= row["J"] <= 1.0 and 0.0 <= row["F"] <= 1.0
        assert row["J&F"] == (row["J"] + row["F"]) / 2
