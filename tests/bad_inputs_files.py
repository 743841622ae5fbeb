"""`videoglamm score` / `convert` / `export` / `synth` cases."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from bad_input_corpus import ROOT, Env, Outcome, case, expect_cli
from bad_input_fixtures import pickle_bomb, user_file


# --------------------------------------------------------------------------- CLI: score

def _davis(env: Env, seq: str = "s") -> tuple[Path, Path]:
    from PIL import Image
    gt, pred = env.tmp / "gt", env.tmp / "pred"
    for root in (gt, pred):
        (root / seq).mkdir(parents=True)
        for t in range(3):
            mask = np.zeros((16, 16), np.uint8)
            mask[4:10, 4:10] = 1
            Image.fromarray(mask, mode="L").save(root / seq / f"{t:05d}.png")
    return gt, pred


@case("score")
def score_rvos_corrupt_prediction_png(env: Env) -> Outcome:
    gt, pred = _davis(env)
    (pred / "s" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return expect_cli(env, ["score", "rvos", "--protocol", "davis-semi", "--gt", str(gt), "--pred", str(pred),
                            "--workers", "1"], "00001.png")


@case("score")
def score_rvos_corrupt_gt_png(env: Env) -> Outcome:
    gt, pred = _davis(env)
    (gt / "s" / "00002.png").write_bytes(b"")
    return expect_cli(env, ["score", "rvos", "--protocol", "davis-semi", "--gt", str(gt), "--pred", str(pred),
                            "--workers", "1"], "00002.png")


@case("score")
def score_rvos_jpeg_as_prediction(env: Env) -> Outcome:
    """A (lossy) JPEG saved under a .png name is refused, not scored as a mask."""
    from PIL import Image
    gt, pred = _davis(env)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:10, 4:10] = 1
    Image.fromarray(mask, mode="L").save(pred / "s" / "00001.png", format="JPEG")
    return expect_cli(env, ["score", "rvos", "--protocol", "davis-semi", "--gt", str(gt), "--pred", str(pred),
                            "--workers", "1"], "00001.png", "JPEG")


@case("score")
def score_rvos_missing_gt(env: Env) -> Outcome:
    _, pred = _davis(env)
    return expect_cli(env, ["score", "rvos", "--protocol", "davis-semi", "--gt", str(env.tmp / "nogt"),
                            "--pred", str(pred)], "nogt")


@case("score")
def score_rvos_workers_zero(env: Env) -> Outcome:
    gt, pred = _davis(env)
    return expect_cli(env, ["score", "rvos", "--protocol", "davis-semi", "--gt", str(gt), "--pred", str(pred),
                            "--workers", "0"], "--workers")


@case("score")
def score_rvos_mevis_malformed_meta(env: Env) -> Outcome:
    split = env.tmp / "split"
    split.mkdir()
    (split / "meta_expressions.json").write_text('{"videoz": {}}')
    (split / "mask_dict.json").write_text("{}")
    (env.tmp / "pred").mkdir()
    return expect_cli(env, ["score", "rvos", "--protocol", "mevis", "--gt", str(split), "--pred",
                            str(env.tmp / "pred")], "meta_expressions.json", "videos")


@case("score")
def score_rvos_mevis_truncated_json(env: Env) -> Outcome:
    split = env.tmp / "split"
    split.mkdir()
    (split / "meta_expressions.json").write_text('{"videos": {"v": {"frames": ["0')
    (split / "mask_dict.json").write_text("{}")
    (env.tmp / "pred").mkdir()
    return expect_cli(env, ["score", "rvos", "--protocol", "mevis", "--gt", str(split), "--pred",
                            str(env.tmp / "pred")], "meta_expressions.json", "JSON")


@case("score")
def score_captions_malformed_json(env: Env) -> Outcome:
    (env.tmp / "refs.json").write_text("{")
    (env.tmp / "preds.json").write_text("{}")
    return expect_cli(env, ["score", "captions", "--refs", str(env.tmp / "refs.json"), "--preds",
                            str(env.tmp / "preds.json")], "refs.json", "JSON")


@case("score")
def score_captions_refs_not_a_mapping(env: Env) -> Outcome:
    (env.tmp / "refs.json").write_text('["a cat"]')
    (env.tmp / "preds.json").write_text('{"0": "a cat"}')
    return expect_cli(env, ["score", "captions", "--refs", str(env.tmp / "refs.json"), "--preds",
                            str(env.tmp / "preds.json")], "refs.json")


@case("score")
def score_captions_missing_prediction_id(env: Env) -> Outcome:
    (env.tmp / "refs.json").write_text('{"0": ["a cat"], "1": ["a dog"]}')
    (env.tmp / "preds.json").write_text('{"0": "a cat"}')
    return expect_cli(env, ["score", "captions", "--refs", str(env.tmp / "refs.json"), "--preds",
                            str(env.tmp / "preds.json")], "1")


@case("score")
def score_captions_meteor_closes_its_pipes(env: Env) -> Outcome:
    """METEOR runs a Java process: scoring must close its pipes (no ResourceWarning) when it is done."""
    import gc

    from videoglamm.metrics.captions import caption_scores
    if shutil.which("java") is None:
        return Outcome("handled", "no Java: METEOR cannot run here")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        caption_scores({"0": ["a red circle moves left"]}, {"0": "a red circle moves"})
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    return Outcome("silent-wrong", f"ResourceWarning: {leaks[:2]}") if leaks else Outcome("handled")


@case("score")
def score_vg_malformed_gt(env: Env) -> Outcome:
    (env.tmp / "gt.json").write_text('{"0": {"frames": [0]}}')
    (env.tmp / "pred").mkdir()
    return expect_cli(env, ["score", "vg", "--gt", str(env.tmp / "gt.json"), "--pred", str(env.tmp / "pred")],
                      "gt.json")


@case("score")
def score_vg_gt_not_json(env: Env) -> Outcome:
    (env.tmp / "gt.json").write_text("boxes!")
    (env.tmp / "pred").mkdir()
    return expect_cli(env, ["score", "vg", "--gt", str(env.tmp / "gt.json"), "--pred", str(env.tmp / "pred")],
                      "gt.json", "JSON")


@case("score")
def score_gcg_malformed_gt(env: Env) -> Outcome:
    (env.tmp / "gt").mkdir()
    (env.tmp / "pred").mkdir()
    (env.tmp / "gt" / "gcg.json").write_text("{")
    (env.tmp / "pred" / "gcg.json").write_text("{}")
    return expect_cli(env, ["score", "gcg", "--gt", str(env.tmp / "gt"), "--pred", str(env.tmp / "pred"),
                            "--no-captions"], "gcg.json")


@case("score")
def score_out_under_a_file(env: Env) -> Outcome:
    (env.tmp / "refs.json").write_text('{"0": ["a cat"]}')
    (env.tmp / "preds.json").write_text('{"0": "a cat"}')
    blocker = user_file(env)
    return expect_cli(env, ["score", "captions", "--refs", str(env.tmp / "refs.json"), "--preds",
                            str(env.tmp / "preds.json"), "--out", str(blocker / "r.json")], "notes.txt",
                      "not a folder")


@case("score")
def score_bad_text_encoder_spec(env: Env) -> Outcome:
    (env.tmp / "gt").mkdir()
    (env.tmp / "pred").mkdir()
    return expect_cli(env, ["score", "gcg", "--gt", str(env.tmp / "gt"), "--pred", str(env.tmp / "pred"),
                            "--text-encoder", "no_such_module_xyz:encode"], "no_such_module_xyz")


# --------------------------------------------------------------------------- CLI: convert / export / synth

@case("convert")
def convert_samwise_pickle_is_refused(env: Env) -> Outcome:
    marker = env.tmp / "PICKLE_RAN"
    src = pickle_bomb(env.tmp / "release.pth", marker)
    outcome = expect_cli(env, ["convert", "samwise", "--src", str(src), "--preset", "samwise-tiny", "--dst",
                               str(env.tmp / "dst")], "release.pth", "weights_only")
    return Outcome("silent-wrong", "the pickle was executed") if marker.exists() else outcome


@case("convert")
def convert_samwise_truncated(env: Env) -> Outcome:
    import torch
    src = env.tmp / "release.pth"
    torch.save({"model": {"a": torch.zeros(100)}}, src)
    src.write_bytes(src.read_bytes()[:200])
    return expect_cli(env, ["convert", "samwise", "--src", str(src), "--preset", "samwise-tiny", "--dst",
                            str(env.tmp / "dst")], "release.pth")


@case("convert")
def convert_samwise_wrong_keys(env: Env) -> Outcome:
    import torch
    src = env.tmp / "release.pth"
    torch.save({"model": {"a": torch.zeros(3)}}, src)
    return expect_cli(env, ["convert", "samwise", "--src", str(src), "--preset", "samwise-tiny", "--dst",
                            str(env.tmp / "dst")], "release.pth")


@case("convert")
def convert_samwise_dst_is_a_file(env: Env) -> Outcome:
    import torch
    src = env.tmp / "release.pth"
    torch.save({"model": {}}, src)
    target = user_file(env, "dst")
    return expect_cli(env, ["convert", "samwise", "--src", str(src), "--preset", "samwise-tiny", "--dst",
                            str(target)], "dst", "is a file")


@case("convert")
def convert_videoglamm_missing_src(env: Env) -> Outcome:
    clip = env.tmp / "clip.bin"
    clip.write_bytes(b"")
    return expect_cli(env, ["convert", "videoglamm", "--src", str(env.tmp / "release"), "--clip", str(clip),
                            "--dst", str(env.tmp / "dst"), "--preset", "videoglamm-tiny"], "release")


@case("convert")
def convert_videoglamm_malformed_index(env: Env) -> Outcome:
    release = env.tmp / "release"
    release.mkdir()
    (release / "model.safetensors.index.json").write_text("{\"weight_map\": ")
    clip = env.tmp / "clip.bin"
    clip.write_bytes(b"")
    return expect_cli(env, ["convert", "videoglamm", "--src", str(release), "--clip", str(clip),
                            "--dst", str(env.tmp / "dst"), "--preset", "videoglamm-tiny"],
                      "model.safetensors.index.json")


@case("convert")
def convert_videoglamm_corrupt_clip(env: Env) -> Outcome:
    release = env.tmp / "release"
    release.mkdir()
    (release / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"model.embed_tokens.weight": "model-00001-of-00001.safetensors"}}))
    (release / "model-00001-of-00001.safetensors").write_bytes(os.urandom(64))
    clip = env.tmp / "clip.safetensors"
    clip.write_bytes(os.urandom(64))
    tokenizer = ROOT / "videoglamm" / "assets" / "tokenizers" / "videoglamm-tiny"
    return expect_cli(env, ["convert", "videoglamm", "--src", str(release), "--clip", str(clip), "--tokenizer",
                            str(tokenizer), "--dst", str(env.tmp / "dst"), "--preset", "videoglamm-tiny"],
                      "clip.safetensors")


@case("convert")
def convert_unknown_preset(env: Env) -> Outcome:
    import torch
    src = env.tmp / "release.pth"
    torch.save({"model": {}}, src)
    return expect_cli(env, ["convert", "samwise", "--src", str(src), "--preset", "samwise-huge", "--dst",
                            str(env.tmp / "dst")], "samwise-huge")


@case("export")
def export_missing_checkpoint(env: Env) -> Outcome:
    return expect_cli(env, ["export", "--checkpoint", str(env.tmp / "step_1"), "--out", str(env.tmp / "out")],
                      "step_1")


@case("export")
def export_empty_checkpoint_folder(env: Env) -> Outcome:
    (env.tmp / "step_1").mkdir()
    return expect_cli(env, ["export", "--checkpoint", str(env.tmp / "step_1"), "--out", str(env.tmp / "out")],
                      "step_1")


@case("export")
def export_corrupt_checkpoint_files(env: Env) -> Outcome:
    ckpt = env.tmp / "step_1"
    ckpt.mkdir()
    for name in ("config.json", "adapter.safetensors", "adapter_config.json", "trainer_state.json"):
        (ckpt / name).write_text("{")
    return expect_cli(env, ["export", "--checkpoint", str(ckpt), "--out", str(env.tmp / "out")], "step_1")


@case("synth")
def synth_videos_zero(env: Env) -> Outcome:
    return expect_cli(env, ["synth", "--out", str(env.tmp / "d"), "--videos", "0", "--seed", "0", "--no-progress"],
                      "--videos")


@case("synth")
def synth_frames_zero(env: Env) -> Outcome:
    return expect_cli(env, ["synth", "--out", str(env.tmp / "d"), "--videos", "1", "--seed", "0", "--frames", "0",
                            "--no-progress"], "--frames")


@case("synth")
def synth_size_too_small(env: Env) -> Outcome:
    return expect_cli(env, ["synth", "--out", str(env.tmp / "d"), "--videos", "1", "--seed", "0", "--size", "4x4",
                            "--no-progress"], "--size")


@case("synth")
def synth_size_malformed(env: Env) -> Outcome:
    return expect_cli(env, ["synth", "--out", str(env.tmp / "d"), "--videos", "1", "--seed", "0", "--size", "big"],
                      "--size")


@case("synth")
def synth_out_is_a_file(env: Env) -> Outcome:
    target = user_file(env)
    return expect_cli(env, ["synth", "--out", str(target), "--videos", "1", "--seed", "0", "--no-progress",
                            "--overwrite"], "notes.txt", "is a file")


@case("synth")
def synth_out_under_a_file(env: Env) -> Outcome:
    target = user_file(env)
    return expect_cli(env, ["synth", "--out", str(target / "d"), "--videos", "1", "--seed", "0",
                            "--no-progress"], "notes.txt", "not a folder")
