"""Official-checkpoint converters: every listing loads strictly into the full preset on meta, failures name
the key, round trips are exact, the LoRA merge equals peft's, and the sharded CLI conversion is exact."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from conftest import random_video
from videoglamm.config import InferenceConfig, SAM2Config, VideoGLaMMConfig
from videoglamm.convert import convert_official, convert_official_with_report, to_official
from videoglamm.convert._strict import expected_shapes
from videoglamm.convert.parts import PARTS, part_shapes
from videoglamm.errors import CheckpointError
from videoglamm.modeling.videoglamm import VideoGLaMM
from checkpoint_listing import listing
from official_files import LLM_PREFIXES, TINY_TOKENIZER, tiny_videoglamm_release

RELEASE = "videoglamm_release.tsv"
CLIP_HF = ("clip_vit_l14_336_hf.tsv", "clip_vit_l14_336_hf_clipmodel_extra.tsv")
IV2 = ("internvideo2_stage2_1b_224p_f4.tsv", "internvideo2_stage2_1b_224p_f4_ignored.tsv")
CLIP_OC = ("clip_vit_l14_336_openclip.tsv", "clip_vit_l14_336_openclip_text.tsv")
RELEASE_CONFIG = {"vocab_size": 32012, "seg_token_idx": 32011}
B_PLUS = "configs/sam2/sam2_hiera_b+.yaml"


@pytest.fixture(scope="module")
def full() -> VideoGLaMM:
    with torch.device("meta"):
        return VideoGLaMM(VideoGLaMMConfig.from_preset("videoglamm-phi3-mini"))


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], parts: set[str]) -> None:
    """Load `state` (full-model keys) strictly into exactly the model parts it covers."""
    assert {k.split(".")[0] for k in state} == parts
    for part in parts:
        prefix = part + "."
        result = getattr(model, part).load_state_dict(
            {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True, assign=True)
        assert result.missing_keys == [] and result.unexpected_keys == []


# ---------------------------------------------------------------- tables


def test_part_tables_equal_the_model_state_dict(full: VideoGLaMM, tiny_config: VideoGLaMMConfig) -> None:
    assert list(part_shapes(full.config).items()) == list(expected_shapes(full).items())
    with torch.device("meta"):
        tiny = VideoGLaMM(tiny_config)
    assert list(part_shapes(tiny_config).items()) == list(expected_shapes(tiny).items())


# ---------------------------------------------------------------- the release


def test_release_listing_with_clip_loads_strictly_into_the_full_preset(full: VideoGLaMM) -> None:
    release, clip = listing(RELEASE), listing(*CLIP_HF)
    out, report = convert_official_with_report(
        "videoglamm", release, clip=clip, release_config=RELEASE_CONFIG)
    result = full.load_state_dict(out, strict=True, assign=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert all(v.dtype == torch.float16 for k, v in out.items() if not k.startswith("image_tower."))
    assert out["llm.model.embed_tokens.weight"].shape == (32012, 3072)

    parts = report.parts
    assert (parts["llm"].num_mapped, parts["llm"].num_renamed) == (195, 0)
    assert (parts["video_tower"].num_mapped, parts["video_tower"].num_renamed) == (511, 80)  # ls{1,2}.gamma
    assert len(parts["video_tower"].dropped) == 60
    assert (parts["mask_decoder"].num_mapped, parts["mask_decoder"].num_renamed) == (900, 2)  # fuser .weight
    assert all(parts[p].num_renamed == 4 for p in ("image_adapter", "video_adapter", "seg_projector"))
    assert parts["image_tower"].num_fused == 48 and len(parts["image_tower"].dropped) == 199
    assert report.num_mapped == len(full.state_dict())
    # Every release tensor is mapped or dropped with a reason; blocks.39 etc. are never run.
    release_sources = {s for srcs in report.sources.values() for s in srcs if s in release}
    assert release_sources | {k for k in report.dropped if k in release} == set(release)
    never_run = report.dropped["model.vision_tower.vision_encoder.blocks.39.attn.qkv.weight"]
    assert never_run.startswith("never run")
    assert report.dropped["model.vision_tower.vision_proj.weight"] == "video-text contrastive projection"
    assert report.sources["mask_decoder.model.memory_encoder.fuser.layers.1.gamma"] == (
        "model.visual_model.memory_encoder.fuser.layers.1.weight",)
    assert "seg_token_idx = 32011" in report.format()

    # release -> ours -> release: the same names and the very same tensor objects, minus the dropped ones.
    back = to_official("videoglamm", out)
    assert set(back) == set(release) - set(report.dropped)
    assert all(back[k] is release[k] for k in back)


def test_release_renamed_missing_and_misshapen_keys_fail_naming_them() -> None:
    clip = listing(CLIP_HF[0])
    renamed = listing(RELEASE)
    # What a SAM2-package name looks like in the release: not accepted in place of the vendored name.
    renamed["model.visual_model.memory_encoder.fuser.layers.0.gamma"] = renamed.pop(
        "model.visual_model.memory_encoder.fuser.layers.0.weight")
    # transformers 4.x's reload trap: the InternVideo2 layer scale renamed to .weight.
    renamed["model.vision_tower.vision_encoder.blocks.7.ls2.weight"] = renamed.pop(
        "model.vision_tower.vision_encoder.blocks.7.ls2.gamma")
    with pytest.raises(CheckpointError) as err:
        convert_official("videoglamm", renamed, clip=clip)
    msg = str(err.value)
    assert "2 unexpected key(s)" in msg and "model.visual_model.memory_encoder.fuser.layers.0.gamma" in msg
    assert "model.vision_tower.vision_encoder.blocks.7.ls2.weight" in msg
    assert ("mask_decoder.model.memory_encoder.fuser.layers.0.gamma "
            "(from model.visual_model.memory_encoder.fuser.layers.0.weight)") in msg
    assert ("video_tower.blocks.7.mlp_layer_scale "
            "(from model.vision_tower.vision_encoder.blocks.7.ls2.gamma)") in msg

    missing = listing(RELEASE)
    del missing["model.text_hidden_fcs.0.2.bias"]
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\):\n\s+seg_projector.fc2.bias "
                                              r"\(from model.text_hidden_fcs.0.2.bias\)"):
        convert_official("videoglamm", missing, clip=clip)

    misshapen = listing(RELEASE)
    misshapen["lm_head.weight"] = torch.empty(32064, 3072, device="meta")
    with pytest.raises(CheckpointError, match=r"lm_head.weight -> llm.lm_head.weight: checkpoint has "
                                              r"\[32064, 3072\], model expects \[32012, 3072\]"):
        convert_official("videoglamm", misshapen, clip=clip)

    with pytest.raises(TypeError, match=r"missing part\(s\) \['clip'\]"):
        convert_official("videoglamm", listing(RELEASE))


def test_release_vocabulary_must_match_the_config() -> None:
    from transformers import AutoTokenizer

    release, clip = listing(RELEASE), listing(CLIP_HF[0])
    with pytest.raises(CheckpointError,
                       match=r"config.json vocab_size = 32064, but the config's llm.vocab_size = 32012"):
        convert_official("videoglamm", release, clip=clip, release_config={"vocab_size": 32064})
    with pytest.raises(CheckpointError,
                       match=r"seg_token_idx = 32000, but the config's tokens.seg_token_id = 32011"):
        convert_official("videoglamm", release, clip=clip, release_config={"seg_token_idx": 32000})
    tokenizer = AutoTokenizer.from_pretrained(TINY_TOKENIZER)  # 512 entries, [SEG] = 511
    with pytest.raises(CheckpointError, match=r"len\(tokenizer\) = 512.*\n.*\[SEG\] = 511"):
        convert_official("videoglamm", release, clip=clip, tokenizer=tokenizer)


# ---------------------------------------------------------------- the parts


def test_tower_kinds_load_into_the_full_preset(full: VideoGLaMM) -> None:
    for kind, names, part in (("internvideo2", IV2, "video_tower"), ("clip-hf", CLIP_HF, "image_tower"),
                              ("clip-openclip", CLIP_OC, "image_tower")):
        tower_level = convert_official(kind, listing(*names))
        out, report = convert_official_with_report(kind, listing(*names), into_model=True)
        assert list(out) == [f"{part}.{k}" for k in tower_level]
        load_strict(full, out, {part})
        assert set(report.not_covered) == {f"{p}." for p in PARTS} - {f"{part}."}
    video_tower = convert_official("internvideo2", listing(IV2[0]), into_model=True)
    assert to_official("internvideo2", video_tower).keys() <= listing(IV2[0]).keys()


@pytest.mark.parametrize("container", ["model", ""])
def test_sam2_large_loads_into_the_full_preset(full: VideoGLaMM, container: str) -> None:
    file = listing("sam2_hiera_large.tsv")
    out, report = convert_official_with_report("sam2", {container: file} if container else file)
    load_strict(full, out, {"mask_decoder"})
    assert report.container == container and report.num_mapped == 900 and report.num_renamed == 0
    assert to_official("sam2", out) == {"model": file}  # same keys, same tensor objects
    # VideoGLaMM's vendored copy: the fuser's layer scale is called `.weight`.
    vendored = {k.replace("fuser.layers.0.gamma", "fuser.layers.0.weight").replace(
        "fuser.layers.1.gamma", "fuser.layers.1.weight"): v for k, v in file.items()}
    out_v, report_v = convert_official_with_report("sam2", vendored, gamma_named_weight=True)
    assert out_v.keys() == out.keys() and report_v.num_renamed == 2
    with pytest.raises(CheckpointError, match=r"memory_encoder.fuser.layers.0.weight"):
        convert_official("sam2", vendored)


def test_sam2_base_plus_loads_into_a_b_plus_config() -> None:
    cfg = VideoGLaMMConfig.from_preset("videoglamm-phi3-mini", sam2={"variant": B_PLUS})
    file = listing("sam2_hiera_base_plus.tsv")
    out = convert_official("sam2", {"model": file}, config=cfg)
    from videoglamm.modeling.mask_decoder import build_mask_decoder

    with torch.device("meta"):
        decoder = build_mask_decoder(SAM2Config(variant=B_PLUS))
    ours = {k[len("mask_decoder."):]: v for k, v in out.items()}
    result = decoder.load_state_dict(ours, strict=True, assign=True)
    assert result.missing_keys == [] and result.unexpected_keys == [] and len(out) == 612
    # The B+ file does not fit the Hiera-L preset: the message names the differing keys and shapes.
    with pytest.raises(CheckpointError, match=r"image_encoder.trunk.pos_embed -> mask_decoder.model."
                                              r"image_encoder.trunk.pos_embed: "
                                              r"checkpoint has \[1, 112, 14, 14\]"):
        convert_official("sam2", {"model": file})


def test_sam2_failures_name_the_key() -> None:
    file = listing("sam2_hiera_large.tsv")
    sam21 = dict(file, no_obj_embed_spatial=torch.empty(1, 64, device="meta"))  # a SAM 2.1 tensor
    with pytest.raises(CheckpointError, match=r"1 unexpected key.*\n\s+no_obj_embed_spatial"):
        convert_official("sam2", sam21)
    missing = dict(file)
    del missing["no_mem_embed"]
    with pytest.raises(CheckpointError, match=r"mask_decoder.model.no_mem_embed \(from no_mem_embed\)"):
        convert_official("sam2", missing)


def phi3_listing() -> dict[str, torch.Tensor]:
    """Phi-3-mini base names and shapes: the release's LLM lines with Phi-3's padded 32064-row vocabulary."""
    llm = {k: v for k, v in listing(RELEASE).items() if k.startswith(LLM_PREFIXES)}
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        llm[key] = torch.empty(32064, 3072, dtype=torch.bfloat16, device="meta")
    return llm


def test_videogptplus_listings_load_into_the_full_preset(full: VideoGLaMM) -> None:
    lora, non_lora = listing("videogptplus_lora_adapter.tsv"), listing("videogptplus_non_lora_trainables.tsv")
    out, report = convert_official_with_report("videogptplus", phi3_listing(), lora=lora, non_lora=non_lora)
    load_strict(full, out, {"llm", "image_adapter", "video_adapter"})
    assert report.num_fused == 128 and report.num_mapped == 195 + 8
    assert out["llm.model.embed_tokens.weight"].shape == (32012, 3072)
    # merged in float32, cast back to the base dtype
    assert out["llm.model.layers.3.mlp.down_proj.weight"].dtype == torch.float16
    assert set(report.not_covered) == {"image_tower.", "video_tower.", "seg_projector.", "mask_decoder."}
    assert "kept the first 32012 of 32064 rows" in report.format()

    half = dict(lora)
    del half["base_model.model.model.layers.5.mlp.gate_up_proj.lora_B.weight"]
    with pytest.raises(CheckpointError, match=r"missing LoRA key base_model.model.model.layers.5.mlp."
                                              r"gate_up_proj.lora_B.weight"):
        convert_official("videogptplus", phi3_listing(), lora=half, non_lora=non_lora)
    with pytest.raises(CheckpointError, match=r"expected \[64, 3072\] / \[3072, 64\] for r=64"):
        convert_official("videogptplus", phi3_listing(), lora=lora, non_lora=non_lora,
                         lora_r=64, lora_alpha=128)
    renamed = dict(non_lora)
    prefix = "base_model.model.model.mm_projector."
    renamed[prefix + "1.weight"] = renamed.pop(prefix + "2.weight")
    with pytest.raises(CheckpointError, match=r"unexpected.*\n\s+" + re.escape(prefix + "1.weight")):
        convert_official("videogptplus", phi3_listing(), lora=lora, non_lora=renamed)


def test_lora_merge_matches_peft_merge_and_unload(tiny_config: VideoGLaMMConfig) -> None:
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    from videoglamm.modeling.llm import build_llm

    torch.manual_seed(0)
    base = build_llm(tiny_config.llm)
    phi3 = {k: v.clone() for k, v in base.state_dict().items()}
    targets = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=16, target_modules=targets))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.5)  # lora_B starts at zero, which would make any merge look right
    adapter = get_peft_model_state_dict(peft_model)
    assert len(adapter) == 2 * 4 * tiny_config.llm.num_hidden_layers
    non_lora = {f"base_model.model.model.{name}.{i}.{leaf}": torch.randn(shape)
                for name, width in (("mm_projector", tiny_config.video_tower.width),
                                    ("image_mm_projector", tiny_config.image_tower.width))
                for i, shape in ((0, (64, width)), (0, (64,)), (2, (64, 64)), (2, (64,)))
                for leaf in (("weight",) if len(shape) == 2 else ("bias",))}
    out = convert_official("videogptplus", phi3, lora=adapter, non_lora=non_lora, config=tiny_config,
                           lora_r=4, lora_alpha=16)
    merged = peft_model.merge_and_unload().state_dict()
    assert {k[len("llm."):] for k in out if k.startswith("llm.")} == set(merged)
    for key, value in merged.items():
        torch.testing.assert_close(out["llm." + key], value, rtol=1e-6, atol=1e-6)
    changed = [k for k in merged if not torch.equal(merged[k], phi3[k])]
    assert len(changed) == 4 * tiny_config.llm.num_hidden_layers


# ---------------------------------------------------------------- files and the CLI, at tiny size


@pytest.fixture(scope="module")
def tiny_release(
    tiny_config: VideoGLaMMConfig, tmp_path_factory: pytest.TempPathFactory
) -> tuple[VideoGLaMM, Path]:
    """A random tiny VideoGLaMM and, next to it, its official-format files: a 2-shard release, HF CLIP."""
    return tiny_videoglamm_release(tiny_config, tmp_path_factory.mktemp("official"))


def run_cli(root: Path, dst: Path, *extra: str) -> int:
    from videoglamm.cli import main

    return main(["convert", "videoglamm", "--src", str(root / "release"), "--clip", str(root / "clip.bin"),
                 "--tokenizer", str(TINY_TOKENIZER), "--preset", "videoglamm-tiny", "--dst", str(dst),
                 "--no-progress", *extra])


def test_sharded_cli_conversion_loads_with_from_pretrained_bit_identically(
    tiny_release: tuple[VideoGLaMM, Path], tiny_processor, tmp_path: Path,
) -> None:
    model, root = tiny_release
    dst = tmp_path / "converted"
    assert run_cli(root, dst) == 0
    llm_index = json.loads((dst / "llm" / "model.safetensors.index.json").read_text())
    assert sorted(set(llm_index["weight_map"].values())) == ["model-00001-of-00002.safetensors",
                                                             "model-00002-of-00002.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left

    loaded = VideoGLaMM.from_pretrained(dst).eval()
    # The model card (README.md) names the files it came from; the official inference is the default.
    assert loaded.card.origin == "converted" and loaded.config.inference == InferenceConfig()
    assert {s["file"] for s in loaded.card.sources} >= {"pytorch_model.bin.index.json", "clip.bin"}
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert list(theirs) == list(ours)
    assert all(theirs[k].dtype == ours[k].dtype and torch.equal(theirs[k], ours[k]) for k in ours)

    videos = [random_video(t=6, seed=0)]
    batch = tiny_processor(videos=videos, prompts=["describe"], answers=["<p> a thing </p> [SEG]."],
                           masks=[torch.ones(1, 6, 40, 52, dtype=torch.bool)])
    with torch.no_grad():
        a, b = model(**batch), loaded(**batch)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.loss, b.loss)
    assert all(torch.equal(x, y) for x, y in zip(a.pred_masks, b.pred_masks))


def test_cli_dtype_cast_and_safetensors_index(tiny_release: tuple[VideoGLaMM, Path], tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    model, root = tiny_release
    # The same release as safetensors shards with their index.
    src = tmp_path / "st"
    src.mkdir()
    index = json.loads((root / "release" / "pytorch_model.bin.index.json").read_text())
    for name in sorted(set(index["weight_map"].values())):
        tensors = torch.load(root / "release" / name, weights_only=True)
        save_file(tensors, src / name.replace(".bin", ".safetensors"))
    index["weight_map"] = {k: v.replace(".bin", ".safetensors") for k, v in index["weight_map"].items()}
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    (src / "config.json").write_text((root / "release" / "config.json").read_text())
    (tmp_path / "release").symlink_to(src)
    (tmp_path / "clip.bin").symlink_to(root / "clip.bin")

    dst = tmp_path / "bf16"
    assert run_cli(tmp_path, dst, "--dtype", "bfloat16") == 0
    for path in (dst / "model.safetensors", *sorted((dst / "llm").glob("model-*.safetensors"))):
        with safe_open(path, "pt") as f:
            assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    loaded = VideoGLaMM.from_pretrained(dst, dtype=torch.bfloat16)
    ours = model.state_dict()
    assert all(torch.equal(v, ours[k].to(torch.bfloat16)) for k, v in loaded.state_dict().items())


def test_cli_failure_leaves_no_output(tiny_release: tuple[VideoGLaMM, Path], tmp_path: Path, capsys) -> None:
    _, root = tiny_release
    src = tmp_path / "release"
    src.mkdir()
    index = json.loads((root / "release" / "pytorch_model.bin.index.json").read_text())
    shard = sorted(set(index["weight_map"].values()))[1]
    for name in sorted(set(index["weight_map"].values())):
        tensors = torch.load(root / "release" / name, weights_only=True)
        if name == shard:
            tensors.pop("model.norm.weight")  # the index still lists it
        torch.save(tensors, src / name)
    (src / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    (src / "config.json").write_text((root / "release" / "config.json").read_text())
    (tmp_path / "clip.bin").symlink_to(root / "clip.bin")
    assert run_cli(tmp_path, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"{shard} does not hold what its index says: missing ['model.norm.weight']" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.bin", "release"]
