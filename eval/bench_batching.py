"""Batching benchmark: prints numbers, asserts nothing (it reports whether the outputs are identical).

1. `predict` on 4 videos x 4 prompts, tiny and mid presets: one (video, prompt) at a time, one video at a
   time with its prompts (the pre-batching `predict_many`), and batched (`predict_batch`); throughput in
   answers per second and the batched / one-at-a-time ratio.
2. The RVOS runner on a MeViS-layout synthetic set (several expressions per video): the pre-batching path
   vs the batched one, wall time, ratio and whether every prediction file is byte-identical.
3. Generation of 256 new tokens at the mid preset, KV cache vs recomputing the sequence (stop ids
   disabled, so both decode the whole budget).

    python eval/bench_batching.py [--tiny videoglamm-tiny-synthetic] [--mid videoglamm-mid] [--threads 2]

The tiny model defaults to the shipped trained weights (answers that stop and carry `[SEG]`); the mid
preset has random weights (answers run to `--max-new-tokens`, as long answers do).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "tests"):  # run as a script from a checkout; the runner fixtures live in tests/
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def _videos(tmp: Path, n: int, frames: int) -> tuple[list, list[list[str]]]:
    """`n` synthetic videos and 4 prompts each (3 referring questions and one caption request)."""
    from eval.common import load_frames
    from videoglamm.data.synthetic_io import write_dataset

    root = write_dataset(tmp / "predict_videos", n, 0, num_frames=frames, progress=False)
    videos, prompts = [], []
    for video, entry in json.loads((root / "meta_expressions.json").read_text())["videos"].items():
        videos.append(load_frames([root / "JPEGImages" / video / f"{f}.jpg" for f in entry["frames"]]))
        exps = [x["exp"] for x in entry["expressions"].values()][:3]
        exps += ["the moving shape"] * (3 - len(exps))
        prompts.append([f"What is {x} in this video? Please respond with segmentation masks." for x in exps]
                       + ["Describe the video in detail."])
    return videos, prompts


def _same(a, b) -> bool:
    return a.text == b.text and len(a.masks) == len(b.masks) and all(torch.equal(x, y) for x, y in zip(a.masks, b.masks))


def predict_throughput(name: str, videos: list, prompts: list[list[str]], max_new_tokens: int) -> dict:
    from videoglamm import VideoGLaMM
    from videoglamm.modeling.predict import PredictOptions, predict_many

    torch.manual_seed(0)
    model = VideoGLaMM.from_pretrained(name).eval()
    proc = model._processor()
    opts = PredictOptions.for_model(model.config, max_new_tokens=max_new_tokens)
    n = sum(len(p) for p in prompts)
    model.predict_batch(videos[:1], [prompts[0][:1]], max_new_tokens=2)  # warm-up
    t0 = time.perf_counter()
    single = [[predict_many(model, proc, v, [p], opts)[0] for p in ps] for v, ps in zip(videos, prompts)]
    t1 = time.perf_counter()
    per_video = [predict_many(model, proc, v, ps, opts) for v, ps in zip(videos, prompts)]
    t2 = time.perf_counter()
    batched = model.predict_batch(videos, prompts, max_new_tokens=max_new_tokens)
    t3 = time.perf_counter()
    pairs = [(a, b, c) for va, vb, vc in zip(single, per_video, batched) for a, b, c in zip(va, vb, vc)]
    return {
        "model": name, "answers": n, "objects": sum(len(r.masks) for _, _, r in pairs),
        "one_at_a_time_s": t1 - t0, "per_video_s": t2 - t1, "batched_s": t3 - t2,
        "ratio": (t1 - t0) / (t3 - t2), "ratio_vs_per_video": (t2 - t1) / (t3 - t2),
        "identical": all(_same(a, c) and _same(b, c) for a, b, c in pairs),
    }


def runner_speed(name: str, tmp: Path, videos: int, frames: int) -> dict:
    import runner_fixtures as fx

    from eval import rvos
    from eval.common import Predictor
    from videoglamm import VideoGLaMM

    fx.FRAMES = frames  # the fixtures read it when they write the videos
    root = fx.mevis(tmp / "runner", "valid_u", videos=videos)
    meta = json.loads((root / "valid_u" / "meta_expressions.json").read_text())["videos"]
    model = VideoGLaMM.from_pretrained(name).eval()
    args = argparse.Namespace(num_frames=None, frame_sampling=None, max_new_tokens=None, mask_mode=None,
                              clip_length=None)
    times, files = {}, {}
    for batched in (False, True):
        predictor = Predictor.with_options(name, "videoglamm", model, args)
        predictor.batched = batched
        out = tmp / f"runner_out_{batched}"
        t0 = time.perf_counter()
        rvos.main(["--benchmark", "mevis-valid-u", "--root", str(root), "--model", name, "--out", str(out),
                   "--no-progress"], predictor)
        times[batched] = time.perf_counter() - t0
        files[batched] = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "predictions").rglob("*"))
                          if p.is_file()}
        files[batched]["answers"] = [json.loads(p.read_text())["answers"] for p in sorted((out / "done").glob("*"))]
    return {"videos": videos, "expressions": sum(len(e["expressions"]) for e in meta.values()), "frames": frames,
            "files": len(files[True]) - 1, "old_s": times[False], "batched_s": times[True],
            "ratio": times[False] / times[True], "byte_identical": files[True] == files[False]}


def cache_speedup(name: str, new_tokens: int) -> dict:
    from videoglamm import VideoGLaMM
    from videoglamm.modeling.generation import generate
    from videoglamm.modeling.predict import _Source

    torch.manual_seed(0)
    model = VideoGLaMM.from_pretrained(name).eval()
    proc = model._processor()
    with tempfile.TemporaryDirectory() as tmp:
        videos, _ = _videos(Path(tmp), 1, 8)
    source = _Source(videos[0])
    enc = proc.encode_video(source.get(range(source.num_frames)))
    ids, _ = proc.tokenize("Describe the video in detail.")
    with torch.no_grad():
        visual = model.encode_video(enc.pixel_values_image[None], enc.pixel_values_video[None])
        embeds = model.embed_inputs(torch.tensor([ids]), visual)
    times, outs = {}, {}
    for cache in (True, False):
        t0 = time.perf_counter()
        # No stop ids: both decode the whole budget.
        outs[cache] = generate(model.language_model, embeds, seg_token_id=model.config.tokens.seg_token_id,
                               stop_ids=set(), max_new_tokens=new_tokens, use_cache=cache)
        times[cache] = time.perf_counter() - t0
    return {"model": name, "prompt_tokens": embeds.shape[1], "new_tokens": len(outs[True].token_ids),
            "cache_s": times[True], "no_cache_s": times[False], "ratio": times[False] / times[True],
            "same_tokens": outs[True].token_ids == outs[False].token_ids}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", default="videoglamm-tiny-synthetic")
    parser.add_argument("--mid", default="videoglamm-mid")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="budget of part 1")
    parser.add_argument("--runner-videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=12, help="frames per synthetic video")
    parser.add_argument("--cache-tokens", type=int, default=256)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos, prompts = _videos(tmp, 4, args.frames)
        print(f"\n1. predict, 4 videos x 4 prompts, {args.frames} frames, max_new_tokens {args.max_new_tokens}")
        print(f"   {'model':<26} {'answers':>7} {'objects':>7} {'one-by-one s':>12} {'per-video s':>11} "
              f"{'batched s':>9} {'ans/s 1x1':>9} {'ans/s batch':>11} {'ratio':>6} {'identical':>9}")
        for name in (args.tiny, args.mid):
            r = predict_throughput(name, videos, prompts, args.max_new_tokens)
            print(f"   {name:<26} {r['answers']:>7} {r['objects']:>7} {r['one_at_a_time_s']:>12.2f} "
                  f"{r['per_video_s']:>11.2f} {r['batched_s']:>9.2f} {r['answers'] / r['one_at_a_time_s']:>9.2f} "
                  f"{r['answers'] / r['batched_s']:>11.2f} {r['ratio']:>5.2f}x {str(r['identical']):>9}")
        r = runner_speed(args.tiny, tmp, args.runner_videos, args.frames)
        print(f"\n2. eval/rvos.py mevis-valid-u on a MeViS-layout synthetic set ({r['videos']} videos, "
              f"{r['expressions']} expressions, {r['frames']} frames), {args.tiny}")
        print(f"   {'files':>5} {'old s':>7} {'batched s':>9} {'ratio':>6} {'byte-identical':>14}")
        print(f"   {r['files']:>5} {r['old_s']:>7.2f} {r['batched_s']:>9.2f} {r['ratio']:>5.2f}x {str(r['byte_identical']):>14}")
    r = cache_speedup(args.mid, args.cache_tokens)
    print(f"\n3. generate {r['new_tokens']} new tokens after {r['prompt_tokens']} prompt tokens, {args.mid}")
    print(f"   {'kv-cache s':>10} {'no cache s':>10} {'ratio':>7} {'same tokens':>11}")
    print(f"   {r['cache_s']:>10.2f} {r['no_cache_s']:>10.2f} {r['ratio']:>6.1f}x {str(r['same_tokens']):>11}")


if __name__ == "__main__":
    main()
