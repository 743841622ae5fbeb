"""What the benchmark runners share: model loading and prediction, sharding, resumable items, results.

Every runner follows the same shape:

1. list the benchmark's items (videos) in a fixed order;
2. each process (accelerate rank) takes every `num_processes`-th item, skips items whose done marker
   exists, predicts the rest and writes each item's files, then its marker `done/<item>.json`
   atomically (so a marker always means complete outputs);
3. after a barrier, rank 0 merges the markers, scores (or zips a server submission) and writes the
   result JSON atomically.

A run interrupted at any point resumes where it stopped when started again with the same `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import quote

import numpy as np

from videoglamm.errors import ConfigError, InputError

MODEL_KINDS = ("videoglamm", "samwise")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Model, output and frame-sampling options of every runner (unset ones: the model's own defaults)."""
    parser.add_argument("--model", required=True,
                        help="VideoGLaMM or SAMWISE folder, shipped model name or preset (random weights)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (reused to resume)")
    parser.add_argument("--device", help="default: the accelerate process's device")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--num-frames", type=int,
                        help="VideoGLaMM encoder frames (default: the model config's); SAM2 sees every frame")
    parser.add_argument("--frame-sampling", choices=("uniform", "spread", "first"),
                        help="VideoGLaMM encoder frame sampling (default: the model's)")
    parser.add_argument("--max-new-tokens", type=int, help="default: the model's (official: 512)")
    parser.add_argument("--mask-mode", choices=("track", "framewise"), help="default: the model's")
    parser.add_argument("--clip-length", type=int, help="SAMWISE frames per clip (default: the config's)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def model_kind(name_or_path: str) -> str:
    """"videoglamm" or "samwise", from a folder's config.json or the preset name.

    Raises:
        ConfigError: the folder's config.json names another model type.
    """
    path = Path(name_or_path)
    if path.is_dir() and (path / "config.json").is_file():
        from videoglamm.safe_io import read_json

        kind = read_json(path / "config.json", what="a model config").get("model_type")
        if kind not in MODEL_KINDS:
            raise ConfigError(f"{path}/config.json has model_type {kind!r}; expected one of {MODEL_KINDS}")
        return kind
    from videoglamm.samwise.config import SAMWISE_PRESETS

    return "samwise" if str(name_or_path) in SAMWISE_PRESETS else "videoglamm"


@dataclass
class Predictor:
    """A loaded model plus the prediction options a run uses, recorded in the result JSON.

    Attributes:
        name: what `--model` said.
        kind: "videoglamm" or "samwise".
        model: the module, in eval mode.
        options: keyword options of `predict` (VideoGLaMM: PredictOptions fields; SAMWISE: clip_length).
        calls: number of `predict` calls so far (runs that resume completely make none).
        batched: VideoGLaMM: decode all prompts of a video in one batch and track all their objects in one
            SAM2 pass (`predict_batch`); False: one prompt after the other (the earlier path, to compare with).
    """

    name: str
    kind: str
    model: Any
    options: dict[str, Any] = field(default_factory=dict)
    calls: int = 0
    batched: bool = True

    @classmethod
    def load(cls, name: str, args: argparse.Namespace, device: Any) -> "Predictor":
        """Load `name` on `device` with the sampling options of the parsed runner arguments."""
        import torch

        dtype = getattr(torch, args.dtype)
        kind = model_kind(name)
        if kind == "samwise":
            from videoglamm.samwise.model import SAMWISE

            model = SAMWISE.from_pretrained(name, device=device, dtype=dtype)
        else:
            from videoglamm.modeling.videoglamm import VideoGLaMM

            model = VideoGLaMM.from_pretrained(name, device=device, dtype=dtype)
        return cls.with_options(name, kind, model.eval(), args)

    @classmethod
    def with_options(cls, name: str, kind: str, model: Any, args: argparse.Namespace) -> "Predictor":
        """Wrap an already loaded model (tests share one across runs)."""
        if kind == "samwise":
            options = {"clip_length": args.clip_length or model.config.inference.clip_length}
        else:
            from videoglamm.modeling.predict import PredictOptions

            given = {"num_frames": args.num_frames, "frame_sampling": args.frame_sampling,
                     "max_new_tokens": args.max_new_tokens, "mask_mode": args.mask_mode}
            opts = PredictOptions.for_model(model.config, **{k: v for k, v in given.items() if v is not None})
            options = {"num_frames": opts.num_frames or model.config.sampling.encoder_frames,
                       "frame_sampling": opts.frame_sampling, "max_new_tokens": opts.max_new_tokens,
                       "mask_mode": opts.mask_mode}
        return cls(name, kind, model, options)

    def predict(self, frames: np.ndarray, prompts: Sequence[str]) -> list[Any]:
        """One `GroundingResult` per prompt; the video (uint8 (T, H, W, 3)) is encoded once for all."""
        import torch

        self.calls += 1
        with torch.no_grad():
            if self.kind == "videoglamm" and self.batched:
                return self.model.predict_batch([frames], [list(prompts)], **self.options)[0]
            if self.kind == "videoglamm":
                from videoglamm.modeling.predict import PredictOptions, predict_many

                opts = PredictOptions.for_model(self.model.config, **self.options)
                return predict_many(self.model, self.model._processor(), frames, list(prompts), opts)
            return self.model.predict(frames, list(prompts), **self.options)

    def sampling(self) -> dict[str, Any]:
        """The frame sampling of this run, as written into result JSONs."""
        if self.kind == "samwise":
            return {"mask_frames": "all", "clip_length": self.options["clip_length"]}
        return {"mask_frames": "all", "encoder_frames": self.options["num_frames"],
                "encoder_sampling": self.options["frame_sampling"], "mask_mode": self.options["mask_mode"]}

    def require_kind(self, kind: str, task: str) -> None:
        """Raises ConfigError when this model cannot run `task`."""
        if self.kind != kind:
            raise ConfigError(f"{task} needs a {kind} model; {self.name!r} is a {self.kind} model")


def load_frames(paths: Sequence[Path]) -> np.ndarray:
    """Reads RGB frames into uint8 (T, H, W, 3).

    Raises:
        VideoReadError: a frame is missing or not a readable image (the message names it).
        ShapeMismatchError: frames of different sizes.
        InputError: no frames.
    """
    from videoglamm.processing.video_io import read_images

    if not paths:
        raise InputError("no frames to read")
    return read_images(paths).numpy()


def save_mask_png(mask: np.ndarray, path: Path) -> None:
    """bool (H, W) -> 8-bit grayscale 0/255 PNG (the layout the official VideoGLaMM scripts write)."""
    from PIL import Image

    Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255, mode="L").save(path)


def first_mask(result: Any, size: tuple[int, int], num_frames: int) -> np.ndarray:
    """The first `[SEG]` track of a result (the official RVOS scripts keep only it), else all empty."""
    if result.masks:
        return result.masks[0].numpy().astype(bool)
    return np.zeros((num_frames, *size), dtype=bool)


def write_json_atomic(obj: Any, path: Path) -> None:
    """JSON via a temporary sibling and os.replace, so readers never see a partial file."""
    from videoglamm.cli.score import write_json_atomic as write

    write(obj, path)


class ItemStore:
    """Done markers of a run: `<out>/done/<quoted item>.json`, each written atomically after the item's
    outputs, holding what the merge step needs (answers, GT entries)."""

    def __init__(self, out: Path) -> None:
        self.folder = Path(out) / "done"

    def _path(self, item: str) -> Path:
        # Item names may hold "/" (BURST videos): quote them into one file name.
        return self.folder / f"{quote(item, safe='')}.json"

    def is_done(self, item: str) -> bool:
        return self._path(item).is_file()

    def mark_done(self, item: str, record: dict[str, Any]) -> None:
        write_json_atomic({"item": item, **record}, self._path(item))

    def load(self, items: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Markers of `items`, in their order.

        Raises:
            FileNotFoundError: an item has no marker (a process failed before finishing it).
        """
        out = {}
        for item in items:
            path = self._path(item)
            if not path.is_file():
                raise FileNotFoundError(f"item {item!r} has no done marker {path}; rerun to complete it")
            out[item] = json.loads(path.read_text())
        return out


def accelerator() -> Any:
    """The accelerate `Accelerator` (one process without a launcher)."""
    from accelerate import Accelerator

    return Accelerator()


def shard(items: Sequence[str], rank: int, world: int) -> list[str]:
    """Items of process `rank`: every `world`-th, a deterministic split that balances lengths."""
    return list(items[rank::world])


def run_items(items: Sequence[str], work: Callable[[str], dict[str, Any]], store: ItemStore, acc: Any,
              desc: str, progress: bool) -> int:
    """Runs `work` on this process's unfinished items, marking each done, then waits for all processes.

    Returns:
        How many items this process computed (the rest of its shard was already done).
    """
    from tqdm import tqdm

    mine = shard(items, acc.process_index, acc.num_processes)
    todo = [item for item in mine if not store.is_done(item)]
    for item in tqdm(todo, desc=desc, unit="video", disable=not progress or not acc.is_local_main_process):
        store.mark_done(item, work(item))
    acc.wait_for_everyone()
    return len(todo)


def write_item_dir(final: Path, fill: Callable[[Path], None]) -> None:
    """Calls `fill(tmp)` to write an item's folder, then renames it onto `final`; a failure leaves nothing."""
    from videoglamm.atomic import write_dir

    write_dir(final, fill)


def zip_dir_atomic(src: Path, zip_path: Path, prefix: str = "") -> list[str]:
    """Zips every file under `src` as `<prefix><relative path>` into `zip_path` (temp file + rename).

    Returns:
        The archive names, sorted.
    """
    files = sorted(p for p in Path(src).rglob("*") if p.is_file())
    names = [prefix + p.relative_to(src).as_posix() for p in files]
    from videoglamm.atomic import check_output_path, remove_stale_siblings, temp_sibling

    check_output_path(zip_path, "file")
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(zip_path, folder=False)
    try:
        # PNGs are already compressed: storing them is as small and much faster.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for path, name in zip(files, names):
                archive.write(path, name)
        os.replace(tmp, zip_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    remove_stale_siblings(zip_path)
    return names


def result_header(predictor: Predictor, benchmark: str, split: str, protocol: str,
                  num_items: int, **extra: Any) -> dict[str, Any]:
    """The labels every result JSON starts with."""
    import videoglamm

    return {
        "model": predictor.name,
        "model_kind": predictor.kind,
        "benchmark": benchmark,
        "split": split,
        "protocol": protocol,
        "frame_sampling": predictor.sampling(),
        "max_new_tokens": predictor.options.get("max_new_tokens"),
        "videoglamm_version": videoglamm.__version__,
        "num_items": num_items,
        **extra,
    }


def open_run(args: argparse.Namespace, predictor: Predictor | None) -> tuple[Any, Predictor]:
    """The accelerator and the predictor (loaded from `--model` unless one is given)."""
    from videoglamm.atomic import check_output_path

    check_output_path(args.out)  # before any model is loaded
    acc = accelerator()
    if predictor is None:
        predictor = Predictor.load(args.model, args, args.device or acc.device)
    return acc, predictor
