"""Inference benchmark: prints numbers, asserts nothing.

1. `predict` latency split into decode / encode / generate / SAM2 for a model on a 64-frame video.
2. KV-cache generation speed-up over recomputing the sequence, at 128 new tokens (same model, same run).
3. Peak memory (RSS) of `predict_stream` and of the CLI for 100 vs 2,000 frames (each in a fresh process).

    python eval/bench_predict.py [--model videoglamm-tiny] [--device cpu] [--dtype float32] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _video(t: int, h: int = 96, w: int = 128) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 80, size=(h, w, 3), dtype=np.uint8)
    frames = np.repeat(base[None], t, axis=0)
    for i in range(t):
        x = (3 * i) % (w - 20)
        frames[i, 30:50, x : x + 20] = (220, 40, 40)
    return frames


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def latency_split(model, path: Path, device: str) -> dict[str, float]:
    from videoglamm.modeling.predict import PredictOptions, _mask_stream, _Source, answer

    proc = model._processor()
    opts = PredictOptions(max_new_tokens=32)
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    source = _Source(str(path))
    frames = source.get(range(source.num_frames))  # decode every frame once, to time decoding alone
    out["decode"] = time.perf_counter() - t0
    indices = proc.encoder_frame_indices(source.num_frames)
    image_views, video_views = proc.encoder_views(frames[indices])
    t0 = time.perf_counter()
    with torch.no_grad():
        model.encode_video(image_views[None].to(device, model.dtype), video_views[None].to(device, model.dtype))
    _sync(device)
    out["encode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    text, _, seg, _ = answer(model, proc, source, ["What is the red square?"], opts)[0]
    _sync(device)
    out["generate (incl. encode)"] = time.perf_counter() - t0
    prompts = torch.randn(2, model.config.seg_projector.out_dim, device=device, dtype=model.dtype)
    t0 = time.perf_counter()
    for _ in _mask_stream(model, proc, _Source(frames), prompts, [0], "track"):
        pass
    _sync(device)
    out["sam2 track, 2 objects"] = time.perf_counter() - t0
    return out


def cache_speedup(model, device: str, new_tokens: int = 128) -> dict[str, float]:
    from videoglamm.modeling.generation import generate

    proc = model._processor()
    enc = proc.encode_video(_video(16))
    ids, _ = proc.tokenize("Describe the video in detail.")
    with torch.no_grad():
        visual = model.encode_video(enc.pixel_values_image[None].to(device, model.dtype),
                                    enc.pixel_values_video[None].to(device, model.dtype))
        embeds = model.embed_inputs(torch.tensor([ids], device=device), visual)
    times = {}
    for cache in (True, False):
        t0 = time.perf_counter()
        out = generate(model.language_model, embeds, seg_token_id=model.config.tokens.seg_token_id, stop_ids=set(),
                       max_new_tokens=new_tokens, use_cache=cache)
        _sync(device)
        times["kv-cache" if cache else "no cache"] = time.perf_counter() - t0
        assert len(out.token_ids) == new_tokens
    times["speed-up"] = times["no cache"] / times["kv-cache"]
    return times


_STREAM_CHILD = """
import resource, sys, torch
from videoglamm import VideoGLaMM
m = VideoGLaMM.from_pretrained(sys.argv[2]).eval()
seg = torch.randn(2, m.config.seg_projector.out_dim)
from videoglamm.modeling.predict import PredictOptions, _Source, _stream_for
stream = _stream_for(m, m._processor(), _Source(sys.argv[1]), "x", seg, [0], PredictOptions())
n = sum(1 for _ in stream)
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_memory(model_name: str, workdir: Path) -> list[tuple[str, int, float, float]]:
    from videoglamm.visualize import write_video

    rows = []
    for frames in (100, 2000):
        path = workdir / f"v{frames}.mp4"
        write_video(path, _video(frames))
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _STREAM_CHILD, str(path), model_name], capture_output=True,
                             text=True, check=True).stdout.split()
        rows.append(("predict_stream", frames, float(out[1]), time.perf_counter() - t0))
        t0 = time.perf_counter()
        rss = _cli_rss(workdir, path, model_name, frames)
        rows.append(("cli predict", frames, rss, time.perf_counter() - t0))
    return rows


def _cli_rss(workdir: Path, path: Path, model_name: str, frames: int) -> float:
    code = ("import resource, sys; from videoglamm.cli import main; "
            f"main(['predict', {str(path)!r}, 'What is the red square?', '--model', {model_name!r}, '--out', "
            f"{str(workdir / f'p{frames}')!r}, '--max-new-tokens', '16', '--no-progress']); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out.split()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="videoglamm-tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args(argv)
    from videoglamm import VideoGLaMM
    from videoglamm.visualize import write_video

    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    model = VideoGLaMM.from_pretrained(args.model, device=args.device, dtype=dtype).eval()
    print(f"model {args.model} on {args.device} ({args.dtype}), torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_video(tmp / "v64.mp4", _video(64))
        latency_split(model, tmp / "v64.mp4", args.device)  # warm-up
        split = latency_split(model, tmp / "v64.mp4", args.device)
        print("\n1. predict latency, 64-frame video (seconds)")
        for key, value in split.items():
            print(f"   {key:<26} {value:8.3f}")
        speed = cache_speedup(model, args.device)
        print("\n2. generation of 128 new tokens (seconds)")
        for key, value in speed.items():
            print(f"   {key:<26} {value:8.3f}" + ("x" if key == "speed-up" else ""))
        if not args.skip_memory:
            print("\n3. peak RSS (MiB), fresh process each")
            print(f"   {'what':<16} {'frames':>6} {'peak RSS':>10} {'wall s':>8}")
            for what, frames, rss, wall in peak_memory(args.model, tmp):
                print(f"   {what:<16} {frames:>6} {rss:>10.1f} {wall:>8.1f}")
    print(json.dumps({"max_rss_self_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    from videoglamm.cli.entry import run_script

    sys.exit(run_script("bench_predict.py", main))
