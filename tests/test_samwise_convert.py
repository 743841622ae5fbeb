"""The SAMWISE checkpoint converter against the official key listings (meta tensors) and on tiny weights."""

from pathlib import Path

import pytest
import torch

from checkpoint_listing import listing
from videoglamm.convert.samwise import DROP, convert_samwise, to_official_samwise
from videoglamm.errors import CheckpointError
from videoglamm.samwise.config import SAMWISEConfig
from videoglamm.samwise.model import SAMWISE

KEYS = Path(__file__).parent / "data" / "checkpoint_keys"


@pytest.fixture(scope="module")
def base_meta():
    with torch.device("meta"):
        return SAMWISE(SAMWISEConfig.from_preset("samwise-base"))


def test_release_listing_loads_strictly_into_base(base_meta):
    official = listing("samwise_release.tsv")
    state, report = convert_samwise({"model": {f"module.{k}": v for k, v in official.items()}}, base_meta)
    unused_norm = {"conditional_memory_encoder.transformerBlock.norm2.weight",
                   "conditional_memory_encoder.transformerBlock.norm2.bias"}  # never applied by the official block
    assert set(report.dropped) == unused_norm | {k for k in official if k.startswith((
        "text_encoder.model.encoder.lm_head.", "text_encoder._float_tensor",
        "text_encoder.model.encoder.sentence_encoder.version"))}
    assert len(report.dropped) == 10 and report.container == "model"
    base_meta.load_state_dict(state, strict=True, assign=True)
    base_meta.declare_trainable()
    trainable = {k.split("\t")[0] for k in (KEYS / "samwise_trainable.tsv").read_text().splitlines()}
    ours = {n for n, p in base_meta.named_parameters() if p.requires_grad}
    assert {report.sources[n][0] for n in ours} == trainable - unused_norm
    back = to_official_samwise(state)
    assert set(back) == set(official) - set(report.dropped)
    assert all(back[k].shape == official[k].shape for k in back)


def test_profiling_keys_are_dropped_and_strangers_fail(base_meta):
    official = listing("samwise_release.tsv")
    official["cmt_adapters.0.total_params"] = torch.empty(1, device="meta")
    _, report = convert_samwise(official, base_meta)
    assert report.dropped["cmt_adapters.0.total_params"] == DROP[r".*\.(total_params|total_ops)"]
    official["cmt_adapters.0.surprise"] = torch.empty(1, device="meta")
    del official["conditional_memory_encoder.decision_token.weight"]
    with pytest.raises(CheckpointError) as err:
        convert_samwise(official, base_meta)
    assert "cmt_adapters.0.surprise" in str(err.value) and "decision_token" in str(err.value)


@pytest.mark.slow  # builds a second full-size model on meta
def test_pretrain_listing_reports_exactly_the_missing_hsa_and_object_score_keys(base_meta):
    with pytest.raises(CheckpointError) as err:
        convert_samwise(listing("samwise_pretrain_release.tsv"), base_meta)
    text = str(err.value)
    assert "35 missing key(s)" in text and "hsa.attention.in_proj_weight" in text and "obj_score_token" in text
    pretrain_model = SAMWISEConfig.from_preset(
        "samwise-base", adapter={"use_hsa": False},
        sam2={"overrides": (*SAMWISEConfig.from_preset("samwise-base").sam2.overrides,
                            "++model.pred_obj_scores=false", "++model.pred_obj_scores_mlp=false",
                            "++model.fixed_no_obj_ptr=false")})
    with torch.device("meta"):
        model = SAMWISE(pretrain_model)
    state, _ = convert_samwise(listing("samwise_pretrain_release.tsv"), model)
    model.load_state_dict(state, strict=True, assign=True)


def test_roundtrip_and_text_features_on_tiny_weights():
    from transformers import RobertaModel

    torch.manual_seed(0)
    config = SAMWISEConfig.from_preset("samwise-tiny")
    hf = RobertaModel(config.text.to_roberta(), add_pooling_layer=False).eval()
    with torch.no_grad():
        hf.embeddings.token_type_embeddings.weight.zero_()  # what fairseq weights convert to
    source = SAMWISE(config).eval()
    source.text_encoder.load_state_dict(hf.state_dict())
    official = to_official_samwise(source.state_dict())
    assert "cmt_adapters.0.proj_vis_up.0.weight" in official
    assert official["cmt_adapters.0.spatial_pos_embed"].shape[:3] == (1, 1, 1)

    target = SAMWISE(config).eval()
    state, _ = convert_samwise(official, target)
    target.load_state_dict(state, strict=True)
    assert all(torch.equal(v, state[k]) for k, v in source.state_dict().items())
    assert to_official_samwise(state).keys() == official.keys()
    assert all(torch.equal(to_official_samwise(state)[k], v) for k, v in official.items())

    from videoglamm.samwise.fusion import additive_mask, text_embeddings

    tok = target.tokenizer(["the red circle moving left", "a dog"], padding=True, return_tensors="pt")
    padding = tok["attention_mask"] == 0
    with torch.no_grad():
        ref = hf(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).last_hidden_state
        x = text_embeddings(target.text_encoder, tok["input_ids"], padding)
        for layer in target.text_encoder.encoder.layer:
            x = layer(x, additive_mask(padding, x.dtype))
    real = ~padding
    assert torch.allclose(x[real], ref[real], atol=1e-5)  # pads differ only by fairseq's zeroed embeddings

    bad = dict(state)
    bad["text_encoder.embeddings.token_type_embeddings.weight"] = torch.ones_like(
        bad["text_encoder.embeddings.token_type_embeddings.weight"])
    with pytest.raises(CheckpointError):
        to_official_samwise(bad)


def test_cli_converts_a_release_file_into_a_loadable_folder(tmp_path):
    from videoglamm.cli import main

    torch.manual_seed(0)
    config = SAMWISEConfig.from_preset("samwise-tiny")
    source = SAMWISE(config).eval()
    with torch.no_grad():
        source.text_encoder.embeddings.token_type_embeddings.weight.zero_()
    release = tmp_path / "samwise_release.pth"
    torch.save({"model": {f"module.{k}": v for k, v in to_official_samwise(source.state_dict()).items()}}, release)
    dst = tmp_path / "converted"
    assert main(["convert", "samwise", "--src", str(release), "--preset", "samwise-tiny", "--dst", str(dst)]) == 0
    loaded = SAMWISE.from_pretrained(dst)
    ours, theirs = source.state_dict(), loaded.state_dict()
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert main(["convert", "samwise", "--src", str(tmp_path / "missing.pth"), "--preset", "samwise-tiny",
                 "--dst", str(tmp_path / "x")]) == 2
