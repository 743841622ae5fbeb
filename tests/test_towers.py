"""The frozen vision towers and their checkpoint converters (tiny configs on the CPU, full size on meta)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from videoglamm.config import ImageTowerConfig, VideoGLaMMConfig, VideoTowerConfig
from videoglamm.convert.clip import (
    convert_clip_hf,
    convert_clip_hf_with_report,
    convert_clip_openclip,
    convert_clip_openclip_with_report,
)
from videoglamm.convert.internvideo2 import (
    convert_internvideo2,
    convert_internvideo2_with_report,
    to_official_internvideo2,
)
from videoglamm.errors import CheckpointError, InputError, ShapeMismatchError
from videoglamm.modeling.image_tower import ImageTower, build_image_tower
from videoglamm.modeling.video_tower import VideoTower, build_video_tower
from checkpoint_listing import listing

IV2 = ("internvideo2_stage2_1b_224p_f4.tsv", "internvideo2_stage2_1b_224p_f4_ignored.tsv")
CLIP_HF = ("clip_vit_l14_336_hf.tsv",)
CLIP_HF_EXTRA = ("clip_vit_l14_336_hf_clipmodel_extra.tsv",)
CLIP_OC = ("clip_vit_l14_336_openclip.tsv",)
CLIP_OC_TEXT = ("clip_vit_l14_336_openclip_text.tsv",)


def numel(sd: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() for t in sd.values())


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def tiny() -> VideoGLaMMConfig:
    return VideoGLaMMConfig.from_preset("videoglamm-tiny")


def randomize_(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial weights: default inits (e.g. layer scale 1e-5) would hide block-level mistakes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            is_gain = any(s in name for s in ("norm.weight", ".norm", "layer_norm", "layrnorm"))
            p.copy_(1.0 + 0.1 * noise if is_gain and p.dim() == 1 else 0.2 * noise)


# ---------------------------------------------------------------- towers at the tiny preset


def test_image_tower_tiny_shape_and_frozen(tiny: VideoGLaMMConfig) -> None:
    cfg = tiny.image_tower
    tower = build_image_tower(cfg)
    out = tower(torch.randn(3, 3, cfg.image_size, cfg.image_size))
    assert out.shape == (3, cfg.grid**2, cfg.width)
    assert not out.requires_grad
    assert all(not p.requires_grad for p in tower.parameters())
    assert "model.proj" not in tower.state_dict()  # unused joint-space projection
    # The last block exists (strict loading) but is not run for the penultimate feature.
    ran: list[int] = []
    for i, block in enumerate(tower.model.transformer.resblocks):
        block.register_forward_hook(lambda *_, i=i: ran.append(i))
    tower(torch.randn(1, 3, cfg.image_size, cfg.image_size))
    assert cfg.feature_layer == -2 and ran == list(range(cfg.layers - 1))
    with pytest.raises(ShapeMismatchError, match="image tower"):
        tower(torch.randn(1, 3, cfg.image_size + 14, cfg.image_size))


def test_video_tower_tiny_shape_and_frozen(tiny: VideoGLaMMConfig) -> None:
    cfg = tiny.video_tower
    tower = build_video_tower(cfg)
    out = tower(torch.randn(2, 2 * cfg.num_frames, 3, cfg.image_size, cfg.image_size))
    assert out.shape == (2, 2 * cfg.num_frames, cfg.grid**2, cfg.width)
    assert not out.requires_grad
    assert all(not p.requires_grad for p in tower.parameters())
    assert len(tower.blocks) == cfg.feature_block
    with pytest.raises(InputError, match="multiple of num_frames"):
        tower(torch.randn(1, cfg.num_frames + 1, 3, cfg.image_size, cfg.image_size))
    with pytest.raises(ShapeMismatchError, match="video tower"):
        tower(torch.randn(1, cfg.num_frames, 3, cfg.image_size, cfg.image_size + 14))


# ---------------------------------------------------------------- full size on meta vs the listings


def test_full_image_tower_parameter_count_matches_listings() -> None:
    with torch.device("meta"):
        tower = build_image_tower(ImageTowerConfig())
    hf, oc = listing(*CLIP_HF), listing(*CLIP_OC)
    # All 24 blocks and ln_post are kept so the official files load strictly; only `proj` is dropped.
    assert n_params(tower) == numel(hf) == numel(oc) - oc["visual.proj"].numel()
    with torch.device("meta"):
        assert tower(torch.empty(2, 3, 336, 336)).shape == (2, 24 * 24, 1024)
    print(f"\nimage tower (ViT-L/14-336): {n_params(tower):,} parameters")


def test_full_video_tower_parameter_count_matches_listing() -> None:
    cfg = VideoTowerConfig()
    with torch.device("meta"):
        tower = build_video_tower(cfg)
    file = listing(*IV2)
    encoder = {k: v for k, v in file.items() if k.startswith("vision_encoder.")}
    ours = {k: v for k, v in encoder.items() if not any(
        k.startswith(f"vision_encoder.{p}") for p in ("blocks.39.", "img_pos_embed", "clip_")
    ) and not k.startswith("vision_encoder.final_clip_decoder.")}
    assert len(tower.blocks) == cfg.feature_block == 39
    assert n_params(tower) == numel(ours)
    with torch.device("meta"):
        assert tower(torch.empty(1, 16, 3, 224, 224)).shape == (1, 16, 16 * 16, 1408)
    print(f"\nvideo tower (InternVideo2, {cfg.feature_block} of {cfg.depth} blocks): {n_params(tower):,} "
          f"parameters; released vision_encoder.*: {numel(encoder):,}; whole .pt: {numel(file):,}")


@pytest.mark.parametrize("container", ["", "model", "module"])
def test_internvideo2_listing_converts_and_loads_strictly(container: str) -> None:
    cfg = VideoTowerConfig()
    file = listing(*IV2)
    converted, report = convert_internvideo2_with_report({container: file} if container else file, cfg)
    with torch.device("meta"):
        tower = build_video_tower(cfg)
    result = tower.load_state_dict(converted, strict=True, assign=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert report.container == container
    assert report.num_mapped + len(report.dropped) == len(file)
    # patch_embed.proj.* and the two layer scales per block
    assert report.num_renamed == 2 + 2 * cfg.feature_block
    never_run = {k for k in file if k.startswith("vision_encoder.blocks.39.")}
    assert never_run and all(report.dropped[k].startswith("never run") for k in never_run)
    text = {k for k in file if k.startswith("text_encoder.")}
    assert text and all("text encoder" in report.dropped[k] for k in text)
    assert "vision_encoder.img_pos_embed" in report.dropped and "vision_proj.weight" in report.dropped
    assert "dropped" in report.format()


def test_clip_hf_listing_converts_and_loads_strictly() -> None:
    with torch.device("meta"):
        tower = build_image_tower(ImageTowerConfig())
    for names in (CLIP_HF, CLIP_HF + CLIP_HF_EXTRA):
        file = listing(*names)
        converted, report = convert_clip_hf_with_report(file)
        result = tower.load_state_dict(converted, strict=True, assign=True)
        assert result.missing_keys == [] and result.unexpected_keys == []
        assert report.num_fused == 2 * ImageTowerConfig().layers
        assert report.num_mapped + report.num_fused * 2 + len(report.dropped) == len(file)
    assert report.dropped["visual_projection.weight"].startswith("joint image-text projection")
    # transformers 5 keeps CLIPVisionModel keys without the `vision_model.` level.
    bare = {k[len("vision_model."):]: v for k, v in listing(*CLIP_HF).items()}
    assert convert_clip_hf(bare, prefix="").keys() == converted.keys()


def test_clip_openclip_listing_converts_and_loads_strictly() -> None:
    with torch.device("meta"):
        tower = build_image_tower(ImageTowerConfig())
    file = listing(*CLIP_OC, *CLIP_OC_TEXT)
    converted, report = convert_clip_openclip_with_report(file)
    result = tower.load_state_dict(converted, strict=True, assign=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert report.num_renamed == 0
    assert set(report.dropped) == set(file) - {f"visual.{k[len('model.'):]}" for k in converted}
    hf = convert_clip_hf(listing(*CLIP_HF))
    assert {k: tuple(v.shape) for k, v in hf.items()} == {k: tuple(v.shape) for k, v in converted.items()}


# ---------------------------------------------------------------- converter failures name the key


def test_internvideo2_renamed_missing_and_misshapen_keys_fail_naming_them() -> None:
    file = listing(*IV2)
    renamed = dict(file)
    # The transformers 4.x reload of the VideoGLaMM export renames layer-scale `gamma` to `weight`.
    renamed["vision_encoder.blocks.3.ls1.weight"] = renamed.pop("vision_encoder.blocks.3.ls1.gamma")
    with pytest.raises(CheckpointError) as err:
        convert_internvideo2(renamed)
    assert "vision_encoder.blocks.3.ls1.weight" in str(err.value)  # unexpected
    assert "blocks.3.attn_layer_scale (from vision_encoder.blocks.3.ls1.gamma)" in str(err.value)  # missing

    missing = dict(file)
    del missing["vision_encoder.pos_embed"]
    with pytest.raises(CheckpointError,
                       match=r"1 missing key\(s\):\n\s+pos_embed \(from vision_encoder.pos_embed\)"):
        convert_internvideo2(missing)

    misshapen = dict(file)
    misshapen["vision_encoder.cls_token"] = torch.empty(1, 1, 1024, device="meta")
    with pytest.raises(CheckpointError, match=r"vision_encoder.cls_token -> cls_token: "
                                              r"checkpoint has \[1, 1, 1024\], model expects \[1, 1, 1408\]"):
        convert_internvideo2(misshapen)

    extra_block = dict(file)
    extra_block["vision_encoder.blocks.40.norm1.weight"] = torch.empty(1408, device="meta")
    with pytest.raises(CheckpointError, match=r"unexpected key.*\n\s+vision_encoder.blocks.40.norm1.weight"):
        convert_internvideo2(extra_block)


def test_clip_converters_fail_naming_the_key() -> None:
    hf = listing(*CLIP_HF)
    del hf["vision_model.encoder.layers.5.self_attn.k_proj.weight"]
    with pytest.raises(CheckpointError) as err:
        convert_clip_hf(hf)
    msg = str(err.value)
    assert "model.transformer.resblocks.5.attn.in_proj_weight" in msg  # missing fused tensor
    assert "vision_model.encoder.layers.5.self_attn.q_proj.weight" in msg  # its orphaned parts

    hf = listing(*CLIP_HF)
    hf["vision_model.encoder.layers.2.mlp.fc1.weight"] = torch.empty(4096, 1000, device="meta")
    with pytest.raises(CheckpointError, match=r"vision_model.encoder.layers.2.mlp.fc1.weight -> "
                                              r"model.transformer.resblocks.2.mlp.c_fc.weight: "
                                              r"checkpoint has \[4096, 1000\], model expects \[4096, 1024\]"):
        convert_clip_hf(hf)

    with pytest.raises(CheckpointError, match="unexpected.*\n.*vision_model.embeddings.class_embedding"):
        convert_clip_hf(listing(*CLIP_HF), prefix="")  # wrong prefix: nothing silently matches

    oc = listing(*CLIP_OC)
    oc["visual.ln_pre.gamma"] = oc.pop("visual.ln_pre.weight")
    with pytest.raises(CheckpointError, match=r"visual.ln_pre.gamma") as err:
        convert_clip_openclip(oc)
    assert "model.ln_pre.weight" in str(err.value)


def test_to_official_rejects_foreign_keys() -> None:
    with pytest.raises(CheckpointError, match="blocks.0.attn.in_proj_weight"):
        to_official_internvideo2({"blocks.0.attn.in_proj_weight": torch.zeros(1)})


# ---------------------------------------------------------------- numerics


@pytest.mark.parametrize("feature_layer", [-2, -1, 1])
def test_image_tower_matches_transformers_clip(feature_layer: int) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = ImageTowerConfig(image_size=56, patch_size=14, width=32, layers=3, heads=2, output_dim=16,
                           feature_layer=feature_layer)
    hf_cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=128, num_hidden_layers=3,
                              num_attention_heads=2, image_size=56, patch_size=14, hidden_act="quick_gelu",
                              layer_norm_eps=1e-5)
    torch.manual_seed(0)
    hf = CLIPVisionModel(hf_cfg).eval()
    randomize_(hf, seed=1)
    tower = build_image_tower(cfg)
    tower.load_state_dict(convert_clip_hf(hf.state_dict(), cfg, prefix=""), strict=True)

    pixels = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        expected = hf(pixel_values=pixels, output_hidden_states=True).hidden_states[feature_layer][:, 1:]
    torch.testing.assert_close(tower(pixels), expected, atol=1e-5, rtol=1e-5)


def reference_internvideo2(official: dict[str, torch.Tensor], cfg: VideoTowerConfig, segment: torch.Tensor,
                           n_blocks: int) -> torch.Tensor:
    """InternVideo2 from the documented facts, in float64 over official names: (F, 3, S, S) -> (F, g², W)."""
    sd = {k[len("vision_encoder."):]: v.double() for k, v in official.items()}
    w, h, eps = cfg.width, cfg.heads, cfg.norm_eps

    def rms(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight

    # Tubelet 1: the Conv3d is a Conv2d per frame; tokens are frame-major.
    x = F.conv2d(segment.double(), sd["patch_embed.proj.weight"][:, :, 0], sd["patch_embed.proj.bias"],
                 stride=cfg.patch_size)
    x = x.flatten(2).transpose(1, 2).reshape(1, -1, w)
    x = torch.cat([sd["cls_token"], x], dim=1) + sd["pos_embed"]
    for i in range(n_blocks):
        b = lambda name: sd[f"blocks.{i}.{name}"]  # noqa: E731
        y = rms(x, b("norm1.weight"))
        q, k, v = (y @ b("attn.qkv.weight").T).split(w, dim=-1)
        q, k = rms(q, b("attn.q_norm.weight")), rms(k, b("attn.k_norm.weight"))
        q, k, v = (t.reshape(1, -1, h, w // h).transpose(1, 2) for t in (q, k, v))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(w // h), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(1, -1, w) @ b("attn.proj.weight").T + b("attn.proj.bias")
        x = x + b("ls1.gamma") * y
        y = rms(x, b("norm2.weight")) @ b("mlp.fc1.weight").T + b("mlp.fc1.bias")
        y = F.gelu(y) @ b("mlp.fc2.weight").T + b("mlp.fc2.bias")
        x = x + b("ls2.gamma") * y
    return x[0, 1:].reshape(segment.shape[0], cfg.grid**2, w)


def test_video_tower_matches_reference_at_the_feature_block(tiny: VideoGLaMMConfig) -> None:
    cfg = dataclasses.replace(tiny.video_tower, depth=3, feature_block=2)
    tower = build_video_tower(cfg)
    randomize_(tower, seed=2)
    official = to_official_internvideo2(tower.state_dict())
    frames = torch.randn(1, cfg.num_frames, 3, cfg.image_size, cfg.image_size)
    out = tower(frames)[0].double()
    expected = reference_internvideo2(official, cfg, frames[0], n_blocks=2)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)  # float32 tower vs float64 reference
    # The check discriminates: one block fewer gives a clearly different result.
    assert (out - reference_internvideo2(official, cfg, frames[0], n_blocks=1)).abs().max() > 1e-2


def test_video_tower_segments_are_independent(tiny: VideoGLaMMConfig) -> None:
    cfg = tiny.video_tower
    tower = build_video_tower(cfg)
    randomize_(tower, seed=3)
    frames = torch.randn(2, 3 * cfg.num_frames, 3, cfg.image_size, cfg.image_size)
    per_segment = torch.cat([tower(chunk) for chunk in frames.split(cfg.num_frames, dim=1)], dim=1)
    torch.testing.assert_close(tower(frames), per_segment, atol=1e-5, rtol=1e-5)


def test_internvideo2_round_trip_is_identity(tiny: VideoGLaMMConfig) -> None:
    cfg = tiny.video_tower
    tower = build_video_tower(cfg)
    ours = tower.state_dict()
    official = to_official_internvideo2(ours)
    assert all(k.startswith("vision_encoder.") for k in official)
    assert any(k.endswith(".ls1.gamma") for k in official)
    back = convert_internvideo2(official, cfg)
    assert list(back) == list(ours)
    assert all(back[k] is ours[k] for k in ours)
    VideoTower(cfg).load_state_dict(back, strict=True)


def test_openclip_names_are_ours_under_model(tiny: VideoGLaMMConfig) -> None:
    ours = build_image_tower(tiny.image_tower).state_dict()
    as_openclip = {f"visual.{k[len('model.'):]}": v for k, v in ours.items()}
    back = convert_clip_openclip(as_openclip, tiny.image_tower)
    assert list(back) == list(ours) and all(back[k] is ours[k] for k in ours)
    ImageTower(tiny.image_tower).load_state_dict(back, strict=True)
