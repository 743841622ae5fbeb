"""Time `from_pretrained` on an official-layout release: the first load converts, the second reads the cache.

    python eval/bench_load.py [--preset videoglamm-tiny]

Builds a random model of `--preset`, writes it in the official release layout (2 `.bin` shards + index,
tokenizer, HF CLIP file; tests/official_files.py), then loads it twice through a fresh conversion cache.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main(argv: list[str] | None = None) -> int:
    import torch

    from official_files import tiny_videoglamm_release
    from videoglamm import VideoGLaMM
    from videoglamm.config import VideoGLaMMConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="videoglamm-tiny")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tiny_videoglamm_release(VideoGLaMMConfig.from_preset(args.preset), root, with_tokenizer=True)
        for label in ("first load (converts)", "second load (cached)"):
            start = time.perf_counter()
            VideoGLaMM.from_pretrained(root / "release", clip=root / "clip.bin", config=args.preset,
                                       conversion_cache=root / "converted")
            print(f"{label}: {time.perf_counter() - start:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
