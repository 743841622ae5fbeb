"""Times our RVOS scoring on the parity fixture next to the official evaluators' times.

    python eval/bench_metrics.py [--runs 3]

For each protocol it prints the median wall time of one whole `videoglamm score rvos` command
(interpreter start, imports, PNG reading and scoring: what the official "wall" column measures), the
in-process scoring time, the official times and the ratio, and checks that the numbers are the
expected ones. Inputs are derived from tests/data/rvos_parity (visible set, 6 sequences) into a
temporary folder first, as its SOURCE.md describes; that preparation is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "rvos_parity"
if str(REPO) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))

# Median wall / self-reported seconds of the official scripts on this visible set (6 sequences), from
# the fixture's official_timings.md (2-core AMD EPYC KVM guest; unsupervised is a single run).
OFFICIAL = {
    "davis-semi": {"wall": 11.95, "self": 11.24},
    "mevis": {"wall": 9.48, "self": 9.26},
    "davis-unsup": {"wall": 166.8, "self": None},
}


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8), mode="L").save(path)


def prepare(tmp: Path, expected: dict) -> dict[str, tuple[Path, Path]]:
    """Semi-supervised relabelled predictions and the MeViS split + 0/255 predictions."""
    from pycocotools import mask as mask_utils

    semi = tmp / "semi"
    split, mevis_pred = tmp / "mevis_split", tmp / "mevis_pred"
    split.mkdir()
    videos, mask_dict = {}, {}
    for seq in expected["sequences"]:
        frames = sorted(p.stem for p in (DATA / "gt" / seq).glob("*.png"))
        gt = np.stack([np.array(Image.open(DATA / "gt" / seq / f"{f}.png")) for f in frames])
        pred = np.stack([np.array(Image.open(DATA / "pred" / seq / f"{f}.png")) for f in frames])
        lut = np.zeros(256, np.uint8)
        for src, dst in expected["semi_supervised"]["prediction_relabel"][seq].items():
            lut[int(src)] = dst
        for t, f in enumerate(frames):
            _png(semi / seq / f"{f}.png", lut[pred[t]])
        exprs = {}
        for name, exp in expected["mevis"]["per_expression"].items():
            video, exp_id = name.rsplit("_", 1)
            if video != seq:
                continue
            annos = []
            for g in exp["gt_ids"]:
                anno = f"{seq}-{g}"
                rles = []
                for t in range(len(frames)):
                    m = gt[t] == g
                    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) if m.any() else None
                    rles.append(None if rle is None else {**rle, "counts": rle["counts"].decode()})
                mask_dict[anno] = rles
                annos.append(anno)
            exprs[exp_id] = {"exp": name, "anno_id": annos, "obj_id": exp["gt_ids"]}
            for t, f in enumerate(frames):
                _png(mevis_pred / seq / exp_id / f"{f}.png", np.isin(pred[t], exp["pred_ids"]) * 255)
        videos[seq] = {"frames": frames, "expressions": exprs}
    (split / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    (split / "mask_dict.json").write_text(json.dumps(mask_dict))
    return {
        "davis-semi": (DATA / "gt", semi),
        "mevis": (split, mevis_pred),
        "davis-unsup": (DATA / "gt", DATA / "pred"),
    }


def max_abs_diff(protocol: str, result: dict, expected: dict) -> float:
    if protocol == "mevis":
        want = expected["mevis"]
        diffs = [abs(result[k] - want[k]) for k in ("J", "F", "J&F")]
        for name, e in want["per_expression"].items():
            got = result["per_expression"][name]
            diffs += [abs(got["J"] - e["J"]), abs(got["F"] - e["F"])]
        return max(diffs)
    want = expected["semi_supervised" if protocol == "davis-semi" else "unsupervised"]
    diffs = [abs(result[k] - v) for k, v in want["global"].items()]
    for label, stats in want["per_object"].items():
        diffs += [abs(result["per_object"][label][k] - v) for k, v in stats.items()]
    return max(diffs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per protocol (median reported)")
    args = parser.parse_args(argv)
    expected = json.loads((DATA / "expected_visible.json").read_text())
    load_before = os.getloadavg()[0]  # other jobs on the machine; the runs below raise it themselves
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        inputs = prepare(tmp, expected)
        for protocol in ("davis-semi", "mevis", "davis-unsup"):
            gt, pred = inputs[protocol]
            out = tmp / f"{protocol}.json"
            launcher = "import sys; from videoglamm.cli import main; sys.exit(main(sys.argv[1:]))"
            cmd = [sys.executable, "-c", launcher, "score", "rvos", "--protocol", protocol,
                   "--gt", str(gt), "--pred", str(pred), "--out", str(out)]
            walls, cpus = [], []
            for _ in range(args.runs):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                subprocess.run(cmd, check=True, env=env)
                walls.append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            from videoglamm.metrics.evaluate_rvos import evaluate_rvos

            start = time.perf_counter()
            evaluate_rvos(protocol, gt, pred, progress=False, workers=1)
            in_process = time.perf_counter() - start
            diff = max_abs_diff(protocol, json.loads(out.read_text()), expected)
            rows.append((protocol, statistics.median(walls), min(walls), statistics.median(cpus), in_process,
                         OFFICIAL[protocol], diff))
    print(f"visible set: {len(expected['sequences'])} sequences, {sum(expected['frames'].values())} frames; "
          f"{args.runs} runs per protocol; {os.cpu_count()} CPUs; load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after "
          f"(the official times were taken on an idle 2-core machine)")
    print("ours wall = whole `videoglamm score rvos` command (default --workers), median and best;"
          " cpu = its user+sys CPU seconds; 1-proc = in-process scoring with workers=1")
    print(f"{'protocol':<12} {'wall med':>9} {'wall best':>10} {'cpu':>7} {'1-proc':>7} {'official':>9} "
          f"{'ratio med':>10} {'ratio best':>11} {'max |diff|':>11}")
    for protocol, wall, best, cpu, in_proc, off, diff in rows:
        print(f"{protocol:<12} {wall:>8.2f}s {best:>9.2f}s {cpu:>6.2f}s {in_proc:>6.2f}s "
              f"{off['wall']:>8.2f}s "
              f"{off['wall'] / wall:>9.1f}x {off['wall'] / best:>10.1f}x {diff:>11.1e}")


if __name__ == "__main__":
    from videoglamm.cli.entry import run_script

    sys.exit(run_script("bench_metrics.py", main))
