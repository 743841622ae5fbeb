"""Benchmark runners (eval/): real layouts in, labelled result JSON out, server zips, resume.

Random-weight tiny models: the tests check plumbing and labels, not quality.
"""

from __future__ import annotations

import argparse
import json
import math
import zipfile
from pathlib import Path

import pytest

import videoglamm
from eval.common import Predictor
import runner_fixtures as fx


def _args(**kw) -> argparse.Namespace:
    base = dict(num_frames=None, frame_sampling="uniform", max_new_tokens=8, mask_mode="track", clip_length=None)
    return argparse.Namespace(**{**base, **kw})


@pytest.fixture(scope="module")
def videoglamm_tiny() -> Predictor:
    from videoglamm.modeling.videoglamm import VideoGLaMM

    model = VideoGLaMM.from_pretrained("videoglamm-tiny").eval()
    return Predictor.with_options("videoglamm-tiny", "videoglamm", model, _args())


@pytest.fixture(scope="module")
def samwise_tiny() -> Predictor:
    from videoglamm.samwise.model import SAMWISE

    model = SAMWISE.from_pretrained("samwise-tiny").eval()
    return Predictor.with_options("samwise-tiny", "samwise", model, _args())


def _expressions(meta_path: Path) -> dict[str, list[str]]:
    videos = json.loads(meta_path.read_text())["videos"]
    return {v: list(e["expressions"]) for v, e in videos.items()}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _check_labels(result: dict, predictor: Predictor, benchmark: str, split: str, protocol: str) -> None:
    assert result["model"] == predictor.name
    assert result["benchmark"] == benchmark and result["split"] == split and result["protocol"] == protocol
    assert result["videoglamm_version"] == videoglamm.__version__
    assert result["frame_sampling"]["mask_frames"] == "all"
    if predictor.kind == "videoglamm":
        assert result["frame_sampling"]["encoder_frames"] == predictor.options["num_frames"]
        assert result["max_new_tokens"] == 8
    else:
        assert result["frame_sampling"]["clip_length"] == predictor.options["clip_length"]


def test_rvos_mevis_valid_u_scores_locally_and_resumes(tmp_path, samwise_tiny):
    from eval import rvos

    root = fx.mevis(tmp_path, "valid_u")
    out = tmp_path / "out"
    argv = ["--benchmark", "mevis-valid-u", "--root", str(root), "--model", "samwise-tiny", "--out", str(out),
            "--no-progress"]
    result = rvos.main(argv, samwise_tiny)
    _check_labels(result, samwise_tiny, "mevis-valid-u", "valid_u", "mevis")
    exps = _expressions(root / "valid_u" / "meta_expressions.json")
    assert result["num_items"] == 2 and result["num_expressions"] == sum(map(len, exps.values()))
    assert all(_finite(result["metrics"][k]) for k in ("J", "F", "J&F"))
    assert result["missing_predictions"] == []
    assert json.loads((out / "result.json").read_text()) == result
    calls, mtime = samwise_tiny.calls, (out / "predictions" / "synth_0000").stat().st_mtime_ns
    again = rvos.main(argv, samwise_tiny)
    assert samwise_tiny.calls == calls and again["computed_this_run"] == 0
    assert (out / "predictions" / "synth_0000").stat().st_mtime_ns == mtime
    assert again["metrics"] == result["metrics"]


def test_rvos_resume_redoes_only_unfinished_items(tmp_path, samwise_tiny):
    from eval import rvos

    root = fx.mevis(tmp_path, "valid_u")
    out = tmp_path / "out"
    argv = ["--benchmark", "mevis-valid-u", "--root", str(root), "--model", "x", "--out", str(out), "--no-progress"]
    rvos.main(argv, samwise_tiny)
    (out / "done" / "synth_0001.json").unlink()  # as if the run had stopped inside this video
    calls = samwise_tiny.calls
    assert rvos.main(argv, samwise_tiny)["computed_this_run"] == 1
    assert samwise_tiny.calls == calls + 1


@pytest.mark.parametrize("benchmark", ["ref-ytvos", "mevis-valid"])
def test_rvos_server_benchmarks_zip_the_server_layout(tmp_path, videoglamm_tiny, benchmark):
    from eval import rvos

    root = fx.ref_ytvos(tmp_path) if benchmark == "ref-ytvos" else fx.mevis(tmp_path, "valid", with_masks=False)
    out = tmp_path / "out"
    result = rvos.main(["--benchmark", benchmark, "--root", str(root), "--model", "videoglamm-tiny",
                        "--out", str(out), "--no-progress"], videoglamm_tiny)
    _check_labels(result, videoglamm_tiny, benchmark, "valid", "server")
    assert result["metrics"] is None
    if benchmark == "ref-ytvos":
        exps = _expressions(root / "meta_expressions" / "valid" / "meta_expressions.json")
        del exps["synth_0002"]  # also in the test meta: not a validation video
        prefix = "Annotations/"
    else:
        exps, prefix = _expressions(root / "valid" / "meta_expressions.json"), ""
    assert result["num_items"] == 2
    expected = sorted(f"{prefix}{v}/{e}/{t:05d}.png" for v, ids in exps.items() for e in ids for t in range(fx.FRAMES))
    with zipfile.ZipFile(out / "submission.zip") as archive:
        assert sorted(archive.namelist()) == expected
    assert result["submission"]["files"] == len(expected)
    assert list(json.loads((out / "done" / "synth_0000.json").read_text())["answers"]) == exps["synth_0000"]


def test_rvos_ref_davis_reports_both_protocols_and_four_sets(tmp_path, samwise_tiny):
    from eval import rvos

    root = fx.ref_davis(tmp_path)
    out = tmp_path / "out"
    result = rvos.main(["--benchmark", "ref-davis17", "--root", str(root), "--model", "samwise-tiny",
                        "--out", str(out), "--no-progress"], samwise_tiny)
    _check_labels(result, samwise_tiny, "ref-davis17", "valid", "davis-unsup+davis-semi")
    for protocol in ("davis-unsup", "davis-semi"):
        metrics = result["metrics"][protocol]
        assert sorted(metrics["sets"]) == sorted(rvos.DAVIS_SETS)
        for numbers in [*metrics["sets"].values(), metrics["mean"]]:
            assert _finite(numbers["J&F-Mean"]) and _finite(numbers["J-Mean"]) and _finite(numbers["F-Mean"])
        mean = sum(s["J&F-Mean"] for s in metrics["sets"].values()) / 4
        assert metrics["mean"]["J&F-Mean"] == pytest.approx(mean)
    for set_name in rvos.DAVIS_SETS:
        pngs = sorted((out / "predictions" / set_name / "synth_0000").glob("*.png"))
        assert [p.stem for p in pngs] == [f"{t:05d}" for t in range(fx.FRAMES)]
