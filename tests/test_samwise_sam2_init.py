"""`load_sam2_weights`: strict init of a SAMWISE's frozen SAM2 from a VideoGLaMM or a SAM2 state dict."""

import pytest
import torch
from safetensors import safe_open

from videoglamm.errors import CheckpointError
from videoglamm.modeling.persistence import PACKAGED_MODELS
from videoglamm.samwise.config import SAMWISEConfig
from videoglamm.samwise.model import SAMWISE
from videoglamm.samwise.sam2_init import load_sam2_weights, sam2_state_dict

SHIPPED = "videoglamm-tiny-synthetic"


@pytest.fixture(scope="module")
def shipped_sam2() -> dict[str, torch.Tensor]:
    with safe_open(str(PACKAGED_MODELS / SHIPPED / "model.safetensors"), "pt") as f:
        return {k[len("mask_decoder.model."):]: f.get_tensor(k) for k in f.keys() if k.startswith("mask_decoder.model.")}


def _model() -> SAMWISE:
    torch.manual_seed(0)
    # The shipped SAM2 runs at 128 px (its config.json); samwise-tiny shares its Hiera layout.
    return SAMWISE(SAMWISEConfig.from_preset("samwise-tiny", sam2={"image_size": 128}))


def test_loads_shipped_videoglamm_sam2_exactly_and_keeps_it_frozen(shipped_sam2):
    model = _model()
    others = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("sam2.")}
    load_sam2_weights(model, SHIPPED)
    state = model.sam2.model.state_dict()
    assert set(state) == set(shipped_sam2) and len(state) > 100
    assert all(torch.equal(state[k], v) for k, v in shipped_sam2.items())
    assert not any(p.requires_grad for p in model.sam2.parameters())
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    assert all(p.requires_grad for p in model.adapters.parameters())  # the trainable set is unchanged
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in others.items())  # only SAM2 changed


def test_folder_file_and_official_checkpoint_sources_agree(shipped_sam2, tmp_path):
    from_folder = sam2_state_dict(PACKAGED_MODELS / SHIPPED)
    torch.save({"model": shipped_sam2}, tmp_path / "sam2.pt")  # the layout of the official SAM2 checkpoints
    from_official = sam2_state_dict(tmp_path / "sam2.pt")
    assert set(from_folder) == set(from_official) == set(shipped_sam2)
    model = _model()
    load_sam2_weights(model, shipped_sam2)  # an in-memory bare SAM2 state dict
    assert torch.equal(model.sam2.model.state_dict()["no_mem_embed"], shipped_sam2["no_mem_embed"])


def test_strict_errors_list_missing_unexpected_and_shapes(shipped_sam2):
    model = _model()
    before = {k: v.clone() for k, v in model.sam2.model.state_dict().items()}
    bad = dict(shipped_sam2)
    del bad["no_mem_embed"]
    bad["extra.weight"] = torch.zeros(1)
    bad["no_obj_ptr"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError) as err:
        load_sam2_weights(model, bad)
    msg = str(err.value)
    assert "no_mem_embed" in msg and "extra.weight" in msg and "no_obj_ptr" in msg and "(3, 3)" in msg
    assert all(torch.equal(model.sam2.model.state_dict()[k], v) for k, v in before.items())  # untouched
    with pytest.raises(CheckpointError, match="neither a file"):
        load_sam2_weights(model, "no-such-model-anywhere")
