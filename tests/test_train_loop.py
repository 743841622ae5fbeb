"""The training loop in one process: a few real steps, NaN skipping, bad-data stop, export."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_recipe
from train.config import apply_overrides, from_dict
from train.loop import Trainer
from videoglamm.errors import DatasetError, TrainingError


def _nan_after(module, calls):
    """Make `module`'s output NaN on its `calls`-th forward (1-based) only."""
    count = {"n": 0}

    def hook(_module, _inputs, output):
        count["n"] += 1
        return output * float("nan") if count["n"] == calls else output

    return module.register_forward_hook(hook)


def _trainable(folder):
    return load_file(folder / "trainable.safetensors")


def test_trains_logs_checkpoints_and_exports(train_data, tmp_path):
    from videoglamm.cli import main
    from videoglamm.modeling.videoglamm import VideoGLaMM

    recipe = tiny_recipe(train_data, tmp_path / "run", max_steps=3, save_every=2, keep_last=1)
    recipe["model"]["lora"] = True
    trainer = Trainer(from_dict(recipe))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    summary = trainer.fit()
    trainer.close()
    assert summary["step"] == 3 and summary["skipped"] == 0 and summary["bad_samples"] == 0
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    for key in ("loss", "lm_loss", "bce", "dice", "lr", "samples_per_second"):
        assert all(torch.isfinite(torch.tensor(m[key])) for m in metrics), key
    assert list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents*"))
    # keep_last=1: only the final checkpoint is left; no temporary folder remains.
    folders = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert folders == ["step_00000003"]
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000003"
    saved = _trainable(ckpt)
    assert set(saved) == set(before) and any("lora_" in n for n in saved)
    assert any(not torch.equal(saved[n], before[n]) for n in saved)
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "export")]) == 0
    loaded = VideoGLaMM.from_pretrained(tmp_path / "export")
    assert not loaded.has_lora and not any("lora_" in n for n, _ in loaded.named_parameters())
    # The model card names the recipe and the checkpoint it was exported from.
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert loaded.card.origin == "trained" and loaded.card.recipe == state["recipe"]
    assert "for 3 steps" in loaded.card.summary and "step_00000003" in loaded.card.summary
    merged = dict(loaded.named_parameters())
    assert torch.equal(merged["seg_projector.fc1.weight"], saved["seg_projector.fc1.weight"])


def test_nan_loss_skips_the_update(train_data, tmp_path):
    recipe = tiny_recipe(train_data, tmp_path / "run", max_steps=3, save_every=1, keep_last=5)
    trainer = Trainer(from_dict(recipe))
    _nan_after(trainer.model.seg_projector, calls=2)
    summary = trainer.fit()
    trainer.close()
    assert summary["skipped"] == 1 and summary["step"] == 3
    root = tmp_path / "run" / "checkpoints"
    s1, s2, s3 = (_trainable(root / f"step_0000000{i}") for i in (1, 2, 3))
    assert all(torch.equal(s1[n], s2[n]) for n in s1), "a NaN step must not change any weight"
    assert any(not torch.equal(s2[n], s3[n]) for n in s2)
    state = json.loads((root / "step_00000003" / "trainer_state.json").read_text())
    assert state["skipped"] == 1
    optim = torch.load(root / "step_00000003" / "optimizer.pt", weights_only=True)
    assert {float(s["step"]) for s in optim["state"].values()} == {2.0}  # two real updates, not three
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[1]["skipped_steps"] == 1 and metrics[1]["loss"] != metrics[1]["loss"]  # NaN logged as NaN


def test_too_many_nan_steps_stop_the_run(train_data, tmp_path):
    recipe = tiny_recipe(train_data, tmp_path / "run", max_steps=3, max_skipped_steps=0)
    trainer = Trainer(from_dict(recipe))
    _nan_after(trainer.model.seg_projector, calls=1)
    with pytest.raises(TrainingError, match="max_skipped_steps=0"):
        trainer.fit()
    trainer.close()


def test_bad_sample_fraction_stops_with_a_clear_error(train_data, tmp_path):
    data = tmp_path / "broken"
    shutil.copytree(train_data, data)
    for video in sorted((data / "JPEGImages").iterdir())[:4]:
        for frame in video.glob("*.jpg"):
            frame.write_bytes(b"not a jpeg")
    recipe = tiny_recipe(data, tmp_path / "run", max_steps=20)
    recipe = apply_overrides(recipe, ["data.max_bad_fraction=0.05"])
    trainer = Trainer(from_dict(recipe))
    with pytest.warns(UserWarning, match="skipping"), pytest.raises(DatasetError, match="max_bad_fraction"):
        trainer.fit()
    trainer.close()


def test_freeze_until_holds_parameters_back(train_data, tmp_path):
    recipe = tiny_recipe(train_data, tmp_path / "run", max_steps=3, save_every=1, keep_last=5,
                         freeze_until={"seg_projector.": 2})
    trainer = Trainer(from_dict(recipe))
    start = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.fit()
    trainer.close()
    root = tmp_path / "run" / "checkpoints"
    s1, s2, s3 = (_trainable(root / f"step_0000000{i}") for i in (1, 2, 3))
    held = [n for n in start if n.startswith("seg_projector.")]
    assert held and all(torch.equal(s1[n], start[n]) and torch.equal(s2[n], start[n]) for n in held)
    assert all(not torch.equal(s3[n], start[n]) for n in held)
    # (the first update has lr 0 under the warm-up, so the others show movement from step 2)
    assert not torch.equal(s2["image_adapter.fc1.weight"], start["image_adapter.fc1.weight"])


def test_sam2_pretraining_stage_feeds_a_fresh_run_and_its_export(train_data, tmp_path):
    # Stage 0 (train/sam2_synthetic.py) writes an official-format SAM2 checkpoint at the recipe's
    # model.sam2_weights; a fresh run copies it into its SAM2, keeps it in base/, and export carries it.
    import yaml

    from train.sam2_synthetic import main as pretrain_sam2
    from videoglamm.cli import main
    from videoglamm.modeling.videoglamm import VideoGLaMM

    recipe = tiny_recipe(train_data, tmp_path / "run", max_steps=1)
    recipe["model"]["overrides"]["sam2"] = {"train_all": False}  # frozen: export must take it from base/
    recipe["model"]["sam2_weights"] = str(tmp_path / "sam2.pt")
    recipe["data"]["synthetic"] = [{"root": str(tmp_path / "synth"), "videos": 3, "seed": 5, "frames": 8,
                                    "size": [48, 64]}]
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert pretrain_sam2(["--config", str(tmp_path / "recipe.yaml"), "--steps", "2", "--eval-every", "2"]) == 0
    pretrained = torch.load(tmp_path / "sam2.pt", weights_only=True)["model"]

    trainer = Trainer(from_dict(recipe))
    sam = trainer.model.mask_decoder.model.state_dict()
    assert all(torch.equal(sam[k], v) for k, v in pretrained.items()) and set(sam) == set(pretrained)
    trainer.fit()
    trainer.close()
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000001"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "export")]) == 0
    exported = VideoGLaMM.from_pretrained(tmp_path / "export").mask_decoder.model.state_dict()
    assert all(torch.equal(exported[k], v) for k, v in pretrained.items())
    # Without the stage-0 weights the same seed builds a different (random) SAM2.
    del recipe["model"]["sam2_weights"]
    random_init = Trainer(from_dict(dict(recipe, train=dict(recipe["train"], output_dir=str(tmp_path / "r2")))))
    random_sam = random_init.model.mask_decoder.model.state_dict()
    random_init.close()
    assert any(not torch.equal(random_sam[k], v) for k, v in pretrained.items())


def test_llm_pretraining_stage_feeds_a_fresh_run_and_its_export(train_data, tmp_path):
    # Stage 0 for the LLM (train/llm_synthetic.py) writes the language model's state dict at the recipe's
    # model.llm_weights; a fresh run starts from it, keeps it in base/, and a bad file is refused strictly.
    import yaml

    from train.llm_synthetic import main as pretrain_llm
    from train.model import copy_llm_weights
    from videoglamm.cli import main
    from videoglamm.errors import CheckpointError
    from videoglamm.modeling.videoglamm import VideoGLaMM

    recipe = tiny_recipe(train_data, tmp_path / "run", max_steps=1)
    recipe["model"]["llm_weights"] = str(tmp_path / "llm.pt")
    recipe["data"]["datasets"][0]["args"]["answer_style"] = "phrase"
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert pretrain_llm(["--config", str(tmp_path / "recipe.yaml"), "--steps", "3", "--eval-every", "3",
                         "--batch-size", "4"]) == 0
    pretrained = torch.load(tmp_path / "llm.pt", weights_only=True)

    trainer = Trainer(from_dict(recipe))
    lm = trainer.model.language_model.state_dict()
    assert set(lm) == set(pretrained) and all(torch.equal(lm[k], v) for k, v in pretrained.items())
    base = VideoGLaMM.from_pretrained(tmp_path / "run" / "base").language_model.state_dict()
    assert all(torch.equal(base[k], v) for k, v in pretrained.items())
    trainer.fit()
    trainer.close()
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000001"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "export")]) == 0

    broken = dict(pretrained)
    broken.pop("lm_head.weight")
    broken["extra.weight"] = torch.zeros(1)
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match=r"missing \['lm_head.weight'\].*unexpected \['extra.weight'\]"):
        copy_llm_weights(trainer.model, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        copy_llm_weights(trainer.model, tmp_path / "absent.pt")


def test_llm_pretraining_refuses_a_pretrained_llm_recipe(train_data, tmp_path):
    import yaml

    from train.llm_synthetic import main as pretrain_llm
    from videoglamm.errors import ConfigError

    recipe = tiny_recipe(train_data, tmp_path / "run")
    recipe["model"].update(lora=True, train_llm=False)
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(ConfigError, match="from scratch"):
        pretrain_llm(["--config", str(tmp_path / "recipe.yaml"), "--out", str(tmp_path / "llm.pt")])
