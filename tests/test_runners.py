"""Benchmark runners (eval/): real layouts in, labelled result JSON out, server zips, resume.

Random-weight tiny models: the tests check plumbing and labels, not quality.
"""

from __future__ import annotations

import argparse
import json
import math
import zipfile
from pathlib import Path

import numpy as np
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


def _char_encoder(phrases: list[str]):
    """A deterministic phrase encoder (letter counts) standing in for bert-base-uncased, offline."""
    import numpy as np

    out = np.zeros((len(phrases), 26))
    for i, phrase in enumerate(phrases):
        for ch in phrase.lower():
            if "a" <= ch <= "z":
                out[i, ord(ch) - 97] += 1
    return out


@pytest.mark.parametrize("benchmark", ["mevis-gcg-valid-u", "vidstg-gcg-val", "burst-ytvis-test"])
def test_gcg_writes_the_evaluate_gcg_layout_and_scores(tmp_path, videoglamm_tiny, benchmark):
    from eval import gcg

    build = {"mevis-gcg-valid-u": fx.mevis_gcg, "vidstg-gcg-val": fx.vidstg_gcg, "burst-ytvis-test": fx.burst_ytvis}
    annotations, root = build[benchmark](tmp_path)
    out = tmp_path / "out"
    argv = ["--benchmark", benchmark, "--annotations", str(annotations), "--root", str(root),
            "--model", "videoglamm-tiny", "--out", str(out), "--no-progress", "--no-captions"]
    result = gcg.main(argv, videoglamm_tiny, text_encoder=_char_encoder)
    _check_labels(result, videoglamm_tiny, benchmark, gcg.BENCHMARKS[benchmark], "gcg")
    assert result["num_items"] == 1
    assert _finite(result["metrics"]["mIoU"]) and _finite(result["metrics"]["recall"])
    assert "AP50" in result["metrics"]
    gt_index = json.loads((out / "gt" / "gcg.json").read_text())
    (video, entry), = gt_index.items()
    assert entry["phrases"] and "[SEG]" not in entry["caption"] and "<p>" not in entry["caption"]
    for k in range(len(entry["phrases"])):
        assert len(list((out / "gt" / video / str(k)).glob("*.png"))) == fx.FRAMES
    assert set(json.loads((out / "pred" / "gcg.json").read_text())) == {video}
    calls = videoglamm_tiny.calls
    assert gcg.main(argv, videoglamm_tiny, text_encoder=_char_encoder)["computed_this_run"] == 0
    assert videoglamm_tiny.calls == calls


def test_gcg_refuses_a_samwise_model(tmp_path, samwise_tiny):
    from eval import gcg
    from videoglamm.errors import ConfigError

    annotations, root = fx.vidstg_gcg(tmp_path)
    with pytest.raises(ConfigError, match="GCG"):
        gcg.main(["--benchmark", "vidstg-gcg-val", "--annotations", str(annotations), "--root", str(root),
                  "--model", "samwise-tiny", "--out", str(tmp_path / "out")], samwise_tiny)


@pytest.mark.parametrize("benchmark,model", [("vidstg", "videoglamm_tiny"), ("hcstvg", "samwise_tiny")])
def test_vg_scores_boxes_per_qtype(tmp_path, request, benchmark, model):
    from eval import vg

    predictor = request.getfixturevalue(model)
    annotations, root = fx.stvg(tmp_path, hcstvg=benchmark == "hcstvg")
    out = tmp_path / "out"
    argv = ["--benchmark", benchmark, "--annotations", str(annotations), "--root", str(root),
            "--model", predictor.name, "--out", str(out), "--no-progress"]
    result = vg.main(argv, predictor)
    _check_labels(result, predictor, benchmark, vg.BENCHMARKS[benchmark], "vg-box-iou")
    qtypes = {"vidstg": {"declarative", "interrogative"}, "hcstvg": {"declarative"}}[benchmark]
    assert set(result["metrics"]) == qtypes | {"all"}
    for numbers in result["metrics"].values():
        assert all(_finite(numbers[k]) for k in ("gt_viou", "gt_viou@0.3", "gt_viou@0.5"))
    gt = json.loads((out / "gt.json").read_text())
    # 1 fps at fps 2 over 4 frames: frames 0 and 2; only 2 lies in the tube [1, 4).
    assert [e["frames"] for e in gt.values()] == [[0, 2], [0, 2]]
    assert [sorted(e["boxes"]) for e in gt.values()] == [["2"], ["2"]]
    assert sorted(p.name for p in (out / "predictions" / "0").iterdir()) == ["00000.png", "00002.png"]
    calls = predictor.calls
    assert vg.main(argv, predictor)["computed_this_run"] == 0 and predictor.calls == calls


def test_ref_davis_overlaps_go_to_the_first_object_as_the_official_argmax():
    from eval.rvos import _palette

    rng = np.random.default_rng(0)
    masks = [rng.random((3, 6, 7)) > 0.4 for _ in range(3)]
    scores = [rng.normal(size=3) for _ in range(3)]
    # eval_referdavis_infer.py: argmax over [0.1 background, binary masks...] (torch.argmax takes the first max).
    stacked = np.concatenate([np.full((1, 3, 6, 7), 0.1), np.stack(masks).astype(float)])
    assert np.array_equal(_palette(masks, scores), np.argmax(stacked, axis=0).astype(np.uint8))
    by_score = _palette(masks, scores, overlap="score")
    both = masks[0] & masks[1]
    winner = np.broadcast_to(np.where(scores[1][:, None, None] > scores[0][:, None, None], 2, 1), both.shape)
    assert np.array_equal(by_score[both & ~masks[2]], winner[both & ~masks[2]])


def test_videoglamm_runners_lower_case_the_expression_as_the_official_ones():
    from types import SimpleNamespace

    from eval.rvos import PROMPT, _prompts

    exps = [SimpleNamespace(text="The Man in RED")]
    assert _prompts(SimpleNamespace(kind="videoglamm"), exps) == [PROMPT.format("the man in red")]
    assert _prompts(SimpleNamespace(kind="videoglamm"), exps, keep_case=True) == [PROMPT.format("The Man in RED")]
    assert _prompts(SimpleNamespace(kind="samwise"), exps) == ["The Man in RED"]
