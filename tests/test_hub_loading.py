"""`from_pretrained` on hub ids (offline, from a hub cache laid out in a temp dir), on the official releases
(detected, converted strictly once, cached), model cards and `push_to_hub`'s folder; all on tiny presets."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from official_files import TINY_TOKENIZER, hub_cache, tiny_samwise_release, tiny_videoglamm_release
from videoglamm.config import InferenceConfig, VideoGLaMMConfig
from videoglamm.convert import KINDS, convert_official, to_official
from videoglamm.errors import CheckpointError
from videoglamm.model_card import EvalEntry
from videoglamm.modeling.videoglamm import VideoGLaMM
from videoglamm.samwise.config import SAMWISEConfig
from videoglamm.samwise.model import SAMWISE

README = Path(__file__).parents[1] / "README.md"


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa)


def front_matter(folder: Path) -> dict:
    from huggingface_hub import ModelCard

    return ModelCard.load(folder / "README.md").data.to_dict()


@pytest.fixture(scope="module")
def official(tiny_config: VideoGLaMMConfig, tmp_path_factory: pytest.TempPathFactory):
    """A tiny release + CLIP on disk, both also in a hub cache: (model, root, cache_dir)."""
    model, root = tiny_videoglamm_release(tiny_config, tmp_path_factory.mktemp("official"), with_tokenizer=True)
    cache = root / "hub"
    hub_cache(cache, "mbzuai-oryx/VideoGLaMM-tiny", root / "release")
    clip = root / "clip-repo"
    clip.mkdir()
    os.link(root / "clip.bin", clip / "pytorch_model.bin")
    hub_cache(cache, "openai/clip-tiny", clip)
    return model, root, cache


@pytest.fixture(scope="module")
def ours(tiny_processor, tmp_path_factory: pytest.TempPathFactory):
    """A random tiny VideoGLaMM, its save_pretrained folder, and that folder in a hub cache."""
    torch.manual_seed(4)
    model = VideoGLaMM(VideoGLaMMConfig.from_preset("videoglamm-tiny")).eval()
    model.processor = tiny_processor
    root = tmp_path_factory.mktemp("ours")
    model.save_pretrained(root / "folder")
    commit = hub_cache(root / "hub", "someone/videoglamm-tiny", root / "folder")
    return model, root, commit


# ---------------------------------------------------------------- hub ids


def test_hub_id_loads_offline_from_the_hub_cache(ours, monkeypatch: pytest.MonkeyPatch) -> None:
    model, root, commit = ours
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read at call time, not at huggingface_hub's import
    loaded = VideoGLaMM.from_pretrained("someone/videoglamm-tiny", cache_dir=root / "hub")
    assert same_state(model, loaded)
    pinned = VideoGLaMM.from_pretrained("someone/videoglamm-tiny", cache_dir=root / "hub", revision=commit)
    assert same_state(model, pinned)


def test_missing_hub_entries_say_what_to_do(ours, monkeypatch: pytest.MonkeyPatch) -> None:
    _, root, _ = ours
    with pytest.raises(CheckpointError) as err:
        VideoGLaMM.from_pretrained("someone/absent", cache_dir=root / "hub", local_files_only=True)
    assert "someone/absent@main is not in the hub cache" in str(err.value)
    assert "local_files_only=True" in str(err.value) and "hf download someone/absent" in str(err.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="v9 is not in the hub cache .* and HF_HUB_OFFLINE is set"):
        VideoGLaMM.from_pretrained("someone/videoglamm-tiny", cache_dir=root / "hub", revision="v9")
    with pytest.raises(CheckpointError, match=r"is neither a preset \(\['samwise-base', 'samwise-tiny'\]\), an "
                                              "existing file or folder, nor a hub repo id"):
        SAMWISE.from_pretrained(str(root / "nowhere" / "model"))


# ---------------------------------------------------------------- the official VideoGLaMM release


def test_official_release_from_the_hub_is_converted_once_then_cached(official, tmp_path: Path) -> None:
    model, root, cache = official
    conv = tmp_path / "converted"
    load = dict(clip="openai/clip-tiny", config="videoglamm-tiny", cache_dir=cache, local_files_only=True,
                conversion_cache=conv)
    first = VideoGLaMM.from_pretrained("mbzuai-oryx/VideoGLaMM-tiny", **load)
    assert same_state(model, first)
    assert first.config.inference == InferenceConfig()  # the official inference, not a preset's demo defaults
    (entry,) = list(conv.iterdir())  # one complete entry, no staging folder left
    stamp = (entry / "model.safetensors").stat().st_mtime_ns

    second = VideoGLaMM.from_pretrained("mbzuai-oryx/VideoGLaMM-tiny", **load)
    assert same_state(model, second) and list(conv.iterdir()) == [entry]
    assert (entry / "model.safetensors").stat().st_mtime_ns == stamp  # read from the cache, not rewritten

    card = second.card
    assert card.origin == "converted" and card.license == "other"
    hub_rows = [s for s in card.sources if s.get("repo") == "mbzuai-oryx/VideoGLaMM-tiny"]
    assert {s["file"] for s in hub_rows} >= {"pytorch_model.bin.index.json", "pytorch_model-00001-of-00002.bin"}
    assert front_matter(entry)["base_model"][1] == "openai/clip-vit-large-patch14-336"


def test_release_folder_is_detected_and_a_changed_file_converts_again(official, tmp_path: Path) -> None:
    model, root, _ = official
    conv = tmp_path / "converted"
    src = tmp_path / "release"
    src.mkdir()
    for f in (root / "release").iterdir():
        os.link(f, src / f.name)
    loaded = VideoGLaMM.from_pretrained(src, clip=root / "clip.bin", config="videoglamm-tiny",
                                        conversion_cache=conv)
    assert same_state(model, loaded)
    os.utime(src / "config.json", ns=(1, 1))  # a different file (by its stat) is a different source
    VideoGLaMM.from_pretrained(src, clip=root / "clip.bin", config="videoglamm-tiny", conversion_cache=conv)
    assert len(list(conv.iterdir())) == 2


def test_release_errors_name_what_is_missing(official, ours, tmp_path: Path) -> None:
    _, root, _ = official
    with pytest.raises(CheckpointError, match="official VideoGLaMM release, which has no CLIP tower: pass clip="):
        VideoGLaMM.from_pretrained(root / "release", config="videoglamm-tiny", conversion_cache=tmp_path)
    # Strict: a release shard without a tensor its index lists fails, naming it, and caches nothing.
    src = tmp_path / "broken"
    src.mkdir()
    for f in (root / "release").iterdir():
        os.link(f, src / f.name)
    shard = src / "pytorch_model-00002-of-00002.bin"
    tensors = torch.load(shard, weights_only=True)
    tensors.pop("model.norm.weight")
    shard.unlink()
    torch.save(tensors, shard)
    conv = tmp_path / "converted"
    with pytest.raises(CheckpointError, match=r"missing \['model.norm.weight'\]"):
        VideoGLaMM.from_pretrained(src, clip=root / "clip.bin", config="videoglamm-tiny", conversion_cache=conv)
    assert list(conv.iterdir()) == []
    with pytest.raises(TypeError, match=r"\['clip'\] only apply when converting an official release"):
        VideoGLaMM.from_pretrained(ours[1] / "folder", clip=root / "clip.bin")
    with pytest.raises(CheckpointError, match="is neither a preset .* nor the official VideoGLaMM release"):
        VideoGLaMM.from_pretrained(TINY_TOKENIZER)


# ---------------------------------------------------------------- SAMWISE .pth


def test_samwise_pth_from_a_file_and_from_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pth = tmp_path / "repo" / "samwise_mevis.pth"
    source = tiny_samwise_release(pth)
    conv = tmp_path / "converted"
    loaded = SAMWISE.from_pretrained(pth, config="samwise-tiny", conversion_cache=conv)
    assert same_state(source, loaded) and loaded.card.origin == "converted"
    (entry,) = list(conv.iterdir())
    stamp = (entry / "model.safetensors").stat().st_mtime_ns

    commit = hub_cache(tmp_path / "hub", "ClaudiaCuttano/samwise-tiny", pth.parent)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from_hub = SAMWISE.from_pretrained("ClaudiaCuttano/samwise-tiny", config="samwise-tiny",
                                       cache_dir=tmp_path / "hub", conversion_cache=conv)
    assert same_state(source, from_hub)
    # The snapshot's file resolves to a different path (a blob), so it is its own cache entry, from the hub.
    assert len(list(conv.iterdir())) == 2 and (entry / "model.safetensors").stat().st_mtime_ns == stamp
    assert from_hub.card.sources == [{"file": "samwise_mevis.pth", "bytes": pth.stat().st_size,
                                      "repo": "ClaudiaCuttano/samwise-tiny", "revision": commit}]
    again = SAMWISE.from_pretrained(pth, config="samwise-tiny", conversion_cache=conv)
    assert same_state(source, again) and len(list(conv.iterdir())) == 2
    with pytest.raises(TypeError, match="config= only applies"):
        SAMWISE.from_pretrained(entry, config="samwise-tiny")


# ---------------------------------------------------------------- one converter entry point


def test_convert_official_covers_every_kind_the_readme_lists(tmp_path: Path) -> None:
    sentence = re.search(r"convert_official\(kind, state_dict, \.\.\.\)` also converts (.*?)\n\n", README.read_text(), re.S)
    listed = set(re.findall(r"`([a-z0-9-]+)`", sentence.group(1)))
    assert listed and listed <= set(KINDS)

    source = tiny_samwise_release(tmp_path / "s.pth")
    official = torch.load(tmp_path / "s.pth", weights_only=False)  # our own file: the Namespace is ours
    state = convert_official("samwise", official, config=SAMWISEConfig.from_preset("samwise-tiny"))
    target = SAMWISE(SAMWISEConfig.from_preset("samwise-tiny"))
    target.load_state_dict(state, strict=True)
    assert same_state(source, target)
    assert to_official("samwise", state).keys() == {k.removeprefix("module.") for k in official["model"]}
    with pytest.raises(TypeError, match="takes a SAMWISEConfig"):
        convert_official("samwise", official, config=VideoGLaMMConfig.from_preset("videoglamm-tiny"))
    with pytest.raises(CheckpointError, match="missing"):
        convert_official("samwise", {"model": {}}, config=SAMWISEConfig.from_preset("samwise-tiny"))


# ---------------------------------------------------------------- model cards and push_to_hub


def test_model_card_front_matter_eval_numbers_and_round_trip(ours, tmp_path: Path) -> None:
    model, root, _ = ours
    result = tmp_path / "result.json"
    result.write_text(json.dumps({
        "model": "x", "benchmark": "mevis-valid-u", "split": "valid_u", "protocol": "mevis",
        "frame_sampling": {"mask_frames": "all", "encoder_frames": 8, "encoder_sampling": "uniform"},
        "num_items": 140, "metrics": {"J": 0.5, "F": 0.6, "J&F": 0.55}}))
    loaded = VideoGLaMM.from_pretrained(root / "folder")
    loaded.save_pretrained(tmp_path / "card", eval_results=EvalEntry.from_result_json(result), license="mit")
    meta = front_matter(tmp_path / "card")
    assert (meta["library_name"], meta["license"], meta["pipeline_tag"]) == ("videoglamm", "mit", "video-text-to-text")
    (result_row,) = meta["model-index"][0]["results"]  # one benchmark, its three metrics
    assert result_row["dataset"] == {"name": "mevis-valid-u", "type": "mevis-valid-u", "split": "valid_u"}
    assert [(m["name"], m["value"]) for m in result_row["metrics"]] == [("J", 0.5), ("F", 0.6), ("J&F", 0.55)]
    text = (tmp_path / "card" / "README.md").read_text()
    assert "| mevis-valid-u | valid_u |  | mevis | J&F | 0.550 | 140 | mask_frames=all, encoder_frames=8, " \
           "encoder_sampling=uniform |" in text
    assert f"- `frame_sampling`: {model.config.inference.frame_sampling!r}" in text
    # The facts come back with the folder and a second save keeps them.
    again = VideoGLaMM.from_pretrained(tmp_path / "card")
    assert [e.metric for e in again.card.eval_results] == ["J", "F", "J&F"] and again.card.license == "mit"
    again.save_pretrained(tmp_path / "card2")
    assert front_matter(tmp_path / "card2")["model-index"][0]["results"] == meta["model-index"][0]["results"]
    assert same_state(model, again)


def test_push_to_hub_uploads_exactly_the_saved_folder_and_refuses_offline(
    ours, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from videoglamm.hub import prepare_upload

    model, root, _ = ours
    upload = prepare_upload(model, "someone/videoglamm-tiny", tmp_path / "work")
    saved = sorted(p.relative_to(root / "folder").as_posix() for p in (root / "folder").rglob("*") if p.is_file())
    assert upload.files == saved and "README.md" in saved and "llm/config.json" in saved
    assert front_matter(upload.folder)["model_name"] == "videoglamm-tiny"
    assert same_state(model, VideoGLaMM.from_pretrained(upload.folder))
    with pytest.raises(CheckpointError, match="not a hub repo id"):
        prepare_upload(model, "no-org", tmp_path / "work2")

    samwise = SAMWISE(SAMWISEConfig.from_preset("samwise-tiny"))
    s_upload = prepare_upload(samwise, "someone/samwise-tiny", tmp_path / "work3")
    assert {"README.md", "config.json", "model.safetensors"} <= set(s_upload.files)
    assert front_matter(s_upload.folder)["pipeline_tag"] == "mask-generation"

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="needs the network but HF_HUB_OFFLINE is set"):
        model.push_to_hub("someone/videoglamm-tiny")
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
        samwise.push_to_hub("someone/samwise-tiny")


def test_shipped_model_card_carries_the_recipe_numbers() -> None:
    # The numbers the recipe file records for the shipped weights (an independent record of the same run).
    recipe = (Path(__file__).parents[1] / "configs" / "train" / "tiny_synthetic.yaml").read_text()
    line = re.search(r"this recipe \(the shipped weights\), 60 videos:\s+(.*)", recipe).group(1)
    recorded = [float(x) for x in re.findall(r"\d\.\d{3}", line)]
    card = VideoGLaMM.from_pretrained("videoglamm-tiny-synthetic").card
    assert card.origin == "trained" and card.license == "apache-2.0"
    assert [e.value for e in card.eval_results] == recorded
    assert all(e.frame_sampling["mask_mode"] == "framewise" for e in card.eval_results)


def test_release_detection_uses_the_full_release_listing(tmp_path: Path) -> None:
    from checkpoint_listing import KEYS
    from videoglamm.convert.on_load import is_official_videoglamm_release

    for listing_file, expected in (("videoglamm_release.tsv", True), ("sam2_hiera_large.tsv", False),
                                   ("videogptplus_non_lora_trainables.tsv", False), ("samwise_release.tsv", False)):
        folder = tmp_path / listing_file
        folder.mkdir()
        names = [line.split("\t")[0] for line in (KEYS / listing_file).read_text().splitlines()]
        (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": dict.fromkeys(names, "x.bin")}))
        assert is_official_videoglamm_release(folder) is expected, listing_file
