"""`train/train.py` and `eval/*.py` runner cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bad_input_corpus import ROOT, Env, Outcome, case, expect_script
from bad_input_fixtures import TRAIN, user_file


# --------------------------------------------------------------------------- train/train.py

def _recipe(env: Env, **train: Any) -> Path:
    import yaml
    data = env.cache.get("train_data")
    if data is None:
        from videoglamm.data.synthetic_io import write_dataset
        data = write_dataset(env.tmp.parent / "train_data", 2, seed=5, num_frames=8, size=(48, 64), progress=False)
        env.cache["train_data"] = data
    recipe = {
        "model": {"preset": "videoglamm-tiny", "lora": False, "train_llm": True},
        "data": {"seed": 0, "datasets": [{"name": "rvos", "reader": "RefVOSReader", "constructor": "from_root",
                                          "args": {"root": str(data), "num_frames": 8}, "weight": 1}]},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "train": {"output_dir": str(env.tmp / "run"), "max_steps": 1, "micro_batch_size": 1, "log_every": 1,
                  "save_every": 100, "progress": False, **train},
    }
    path = env.tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@case("train")
def train_missing_config(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(env.tmp / "none.yaml")], "none.yaml", "does not exist")


@case("train")
def train_malformed_yaml(env: Env) -> Outcome:
    (env.tmp / "r.yaml").write_text("model: {preset: [unclosed\n")
    return expect_script(env, TRAIN, ["--config", str(env.tmp / "r.yaml")], "r.yaml", "YAML")


@case("train")
def train_override_without_equals(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(_recipe(env)), "train.max_steps"], "train.max_steps",
                         "key.path=value")


@case("train")
def train_max_steps_float(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(_recipe(env)), "train.max_steps=2.5"], "train.max_steps",
                         "integer")


@case("train")
def train_lora_string(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(_recipe(env)), "model.lora='no'"], "model.lora",
                         "true or false")


@case("train")
def train_lr_string(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(_recipe(env)), "optim.lr=fast"], "optim.lr", "number")


@case("train")
def train_unknown_key(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(_recipe(env)), "train.max_stepz=3"], "max_stepz")


@case("train")
def train_unknown_preset(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(_recipe(env)), "model.preset=videoglamm-huge"],
                         "videoglamm-huge")


@case("train")
def train_unknown_model_override(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(_recipe(env)), "model.overrides.lora.rank=8"], "rank")


@case("train")
def train_bad_data_root_leaves_no_run_folder(env: Env) -> Outcome:
    recipe = _recipe(env)
    return expect_script(env, TRAIN, ["--config", str(recipe), f"data.datasets.0.args.root={env.tmp / 'nodata'}"],
                         "nodata")


@case("train")
def train_bad_reader_name(env: Env) -> Outcome:
    recipe = _recipe(env)
    return expect_script(env, TRAIN, ["--config", str(recipe), "data.datasets.0.reader=NoSuchReader"],
                         "NoSuchReader")


@case("train")
def train_resume_missing_checkpoint(env: Env) -> Outcome:
    recipe = _recipe(env)
    return expect_script(env, TRAIN, ["--config", str(recipe), "--resume", str(env.tmp / "ckpt")], "ckpt")


@case("train")
def train_output_dir_is_a_file(env: Env) -> Outcome:
    blocker = user_file(env)
    recipe = _recipe(env)
    return expect_script(env, TRAIN, ["--config", str(recipe), f"train.output_dir={blocker}"], "notes.txt",
                         "is a file")


@case("train")
def train_samwise_recipe_bad_override(env: Env) -> Outcome:
    return expect_script(env, TRAIN, ["--config", str(ROOT / "configs/train/samwise_tiny_synthetic.yaml"),
                                      "optim.steps=two"], "optim.steps")


# --------------------------------------------------------------------------- eval/ runners

def _runner(env: Env, script: str, argv: list[str], *fragments: str) -> Outcome:
    return expect_script(env, f"eval/{script}", [*argv, "--model", "videoglamm-tiny", "--out",
                                                 str(env.tmp / "out"), "--no-progress"], *fragments)


def _ytvos(env: Env) -> Path:
    import runner_fixtures as fx
    return fx.ref_ytvos(env.tmp)


@case("runner")
def runner_rvos_missing_root(env: Env) -> Outcome:
    return _runner(env, "rvos.py", ["--benchmark", "ref-ytvos", "--root", str(env.tmp / "noroot")], "noroot")


@case("runner")
def runner_rvos_malformed_meta(env: Env) -> Outcome:
    root = _ytvos(env)
    (root / "meta_expressions" / "valid" / "meta_expressions.json").write_text('{"videos": {"a": ')
    return _runner(env, "rvos.py", ["--benchmark", "ref-ytvos", "--root", str(root)], "meta_expressions.json",
                   "JSON")


@case("runner")
def runner_rvos_meta_missing_key(env: Env) -> Outcome:
    root = _ytvos(env)
    (root / "meta_expressions" / "valid" / "meta_expressions.json").write_text('{"videos": {"a": {"frames": []}}}')
    return _runner(env, "rvos.py", ["--benchmark", "ref-ytvos", "--root", str(root)], "meta_expressions.json",
                   "expressions")


@case("runner")
def runner_rvos_corrupt_frame(env: Env) -> Outcome:
    root = _ytvos(env)
    first = sorted((root / "valid" / "JPEGImages").iterdir())[0]
    frame = sorted(first.iterdir())[1]
    frame.write_bytes(b"\xff\xd8\xff not a jpeg")
    return _runner(env, "rvos.py", ["--benchmark", "ref-ytvos", "--root", str(root)], frame.name)


@case("runner")
def runner_rvos_device_cuda(env: Env) -> Outcome:
    import torch
    if torch.cuda.is_available():
        return Outcome("handled", "a GPU is present")
    root = _ytvos(env)
    return _runner(env, "rvos.py", ["--benchmark", "ref-ytvos", "--root", str(root), "--device", "cuda"], "cuda")


@case("runner")
def runner_rvos_num_frames_zero(env: Env) -> Outcome:
    root = _ytvos(env)
    return _runner(env, "rvos.py", ["--benchmark", "ref-ytvos", "--root", str(root), "--num-frames", "0"],
                   "num_frames")


@case("runner")
def runner_gcg_malformed_annotations(env: Env) -> Outcome:
    (env.tmp / "ann.json").write_text("[")
    (env.tmp / "frames").mkdir()
    return _runner(env, "gcg.py", ["--benchmark", "burst-ytvis-test", "--annotations", str(env.tmp / "ann.json"),
                                   "--root", str(env.tmp / "frames"), "--no-captions"], "ann.json")


@case("runner")
def runner_vg_annotations_missing_key(env: Env) -> Outcome:
    (env.tmp / "ann.json").write_text(json.dumps({"videos": [{"video_id": 0}]}))
    (env.tmp / "frames").mkdir()
    return _runner(env, "vg.py", ["--benchmark", "vidstg", "--annotations", str(env.tmp / "ann.json"),
                                  "--root", str(env.tmp / "frames")], "ann.json")


@case("runner")
def runner_vg_malformed_annotations(env: Env) -> Outcome:
    (env.tmp / "ann.json").write_text("{'videos': }")
    (env.tmp / "frames").mkdir()
    return _runner(env, "vg.py", ["--benchmark", "vidstg", "--annotations", str(env.tmp / "ann.json"),
                                  "--root", str(env.tmp / "frames")], "ann.json")


@case("runner")
def runner_eval_synthetic_bad_model(env: Env) -> Outcome:
    return expect_script(env, "eval/eval_synthetic.py", ["--model", str(env.tmp / "none"), "--videos", "1"],
                         "none")


@case("runner")
def runner_eval_synthetic_videos_zero(env: Env) -> Outcome:
    return expect_script(env, "eval/eval_synthetic.py", ["--videos", "0"], "--videos")


@case("runner")
def runner_out_is_a_file(env: Env) -> Outcome:
    root = _ytvos(env)
    blocker = user_file(env)
    return expect_script(env, "eval/rvos.py", ["--benchmark", "ref-ytvos", "--root", str(root), "--model",
                                               "videoglamm-tiny", "--out", str(blocker), "--no-progress"],
                         "notes.txt", "is a file")
