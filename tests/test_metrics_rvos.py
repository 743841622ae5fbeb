"""Parity of J, F, DAVIS statistics and the three RVOS protocols with the official tools.

Expected numbers come from tests/data/rvos_parity (produced by the official code); see SOURCE.md there.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from videoglamm.errors import InputError, ShapeMismatchError
from videoglamm.metrics.davis import (
    db_statistics, semi_supervised_sequence, summarize_davis, unsupervised_sequence,
)
from videoglamm.metrics.mask_io import read_frames
from videoglamm.metrics.mevis import expression_scores, windowed_expression_scores, summarize_mevis
from videoglamm.metrics.rle import RleMask
from videoglamm.metrics.rvos import f_measure, jaccard, jaccard_and_f

DATA = Path(__file__).parent / "data" / "rvos_parity"
TOL = 1e-9


@lru_cache(maxsize=None)
def expected() -> dict:
    return json.loads((DATA / "expected_visible.json").read_text())


@lru_cache(maxsize=None)
def edge_expected() -> dict:
    return json.loads((DATA / "edge_cases" / "expected.json").read_text())


@lru_cache(maxsize=None)
def stacks(seq: str) -> tuple[np.ndarray, np.ndarray]:
    def load(kind: str) -> np.ndarray:
        return read_frames(sorted((DATA / kind / seq).glob("*.png")))[0]

    return load("gt"), load("pred")


def edge_stack(case: str, kind: str) -> np.ndarray | None:
    paths = sorted((DATA / "edge_cases" / case / kind).glob("*.png"))
    return read_frames(paths)[0] if paths else None


def assert_close(actual, wanted, what: str) -> None:
    a = np.asarray(actual, dtype=np.float64)
    values = [np.nan if v is None else v for v in np.atleast_1d(wanted)]
    w = np.asarray(values, dtype=np.float64).reshape(a.shape)
    np.testing.assert_allclose(a, w, rtol=0, atol=TOL, equal_nan=True, err_msg=what)


EDGE_CASES = sorted(edge_expected()["cases"])


@pytest.mark.parametrize("case", EDGE_CASES)
def test_edge_cases_match_official(case: str) -> None:
    want = edge_expected()["cases"][case]
    gt, pred, void = edge_stack(case, "gt"), edge_stack(case, "pred"), edge_stack(case, "void")
    if "db_eval_iou_error" in want:
        # Official code asserts / fails to broadcast; we raise a typed error naming both shapes.
        for fn in (jaccard, f_measure):
            with pytest.raises(ShapeMismatchError, match=r"\(3, 40, 60\)"):
                fn(gt, pred, void)
        return
    j, f = jaccard_and_f(gt, pred, void)
    assert_close(j, want["J_per_frame"], f"{case} J")
    assert_close(f, want["F_per_frame"], f"{case} F")
    assert_close(jaccard(gt, pred, void), want["J_per_frame"], f"{case} jaccard")
    assert_close(f_measure(gt, pred, void), want["F_per_frame"], f"{case} f_measure")
    assert_close(np.mean(j), want["J_mean"], f"{case} J mean")
    assert_close(np.mean(f), want["F_mean"], f"{case} F mean")
    # 2-D frames give the same values as the stack.
    assert_close(jaccard_and_f(gt[0], pred[0], None if void is None else void[0]),
                 [want["J_per_frame"][0], want["F_per_frame"][0]], f"{case} 2-D")


@pytest.mark.parametrize("case", sorted(edge_expected()["db_statistics"]["cases"]))
def test_db_statistics_match_official_up_to_255_frames(case: str) -> None:
    want = edge_expected()["db_statistics"]["cases"][case]
    values = np.array([np.nan if v is None else v for v in want["values"]])
    mean, recall, decay = db_statistics(values)
    assert_close(mean, want["mean"], "mean")
    assert_close(recall, want["recall"], "recall")
    if len(values) <= 255:
        assert_close(decay, want["decay"], "decay")
    else:
        # Official uint8 bin edges wrap and give NaN; ours is finite: first bin mean - last bin mean.
        assert want["decay"] is None
        assert np.isfinite(decay)
        edges = np.round(np.linspace(1, len(values), 5) + 1e-10).astype(int) - 1
        first, last = np.nanmean(values[: edges[1] + 1]), np.nanmean(values[edges[3]:])
        assert decay == pytest.approx(first - last, abs=TOL)


def test_decay_on_long_video_is_finite_and_linear() -> None:
    values = np.linspace(1.0, 0.0, 300)
    _, _, decay = db_statistics(values)
    assert np.isfinite(decay) and decay == pytest.approx(0.75, abs=0.01)


def _relabel(seq: str, pred: np.ndarray) -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)
    for src, dst in expected()["semi_supervised"]["prediction_relabel"][seq].items():
        lut[int(src)] = dst
    return lut[pred]


def _check_davis(section: str, objects) -> int:
    want = expected()[section]
    assert sorted(o.label for o in objects) == sorted(want["per_object"])
    checked = 0
    for o in objects:
        for key, value in want["per_object"][o.label].items():
            assert_close(o.stats[key], value, f"{section} {o.label} {key}")
            checked += 1
        assert_close(o.j, want["per_frame"][o.label]["J"], f"{section} {o.label} J")
        assert_close(o.f, want["per_frame"][o.label]["F"], f"{section} {o.label} F")
        checked += 2 * len(o.j)
    summary = summarize_davis(objects)
    for key, value in want["global"].items():
        assert_close(summary[key], value, f"{section} {key}")
        checked += 1
    # Every number of the section was compared.
    n_frame_values = sum(len(v["J"]) + len(v["F"]) for v in want["per_frame"].values())
    assert checked == 6 * len(want["per_object"]) + n_frame_values + len(want["global"])
    return checked


def test_semi_supervised_matches_official() -> None:
    objects = []
    for seq in expected()["sequences"]:
        gt, pred = stacks(seq)
        objects += semi_supervised_sequence(seq, gt, _relabel(seq, pred))
    _check_davis("semi_supervised", objects)


def test_semi_supervised_rejects_raw_proposal_ids() -> None:
    gt, pred = stacks("judo")
    with pytest.raises(InputError, match="judo: prediction holds object id"):
        semi_supervised_sequence("judo", gt, pred)


def test_unsupervised_matches_official_including_assignment() -> None:
    objects = []
    for seq in expected()["sequences"]:
        gt, pred = stacks(seq)
        objects += unsupervised_sequence(seq, gt, pred)
    _check_davis("unsupervised", objects)
    label_map = expected()["unsupervised"]["per_object_label_map"]
    for o in objects:
        assert (o.gt_id, o.pred_id) == (label_map[o.label]["gt_id"], label_map[o.label]["pred_id"])
    for seq, pairs in expected()["assignment"].items():
        ours = [(o.pred_id, o.gt_id) for o in objects if o.label.rsplit("_", 1)[0] == seq]
        assert ours == [(p["pred_id"], p["gt_id"]) for p in pairs]


def test_unsupervised_rejects_more_than_20_proposals() -> None:
    gt, pred = stacks("judo")
    pred = pred.copy()
    pred[0, 0, 0] = 21
    with pytest.raises(InputError, match="more than the 20 proposals"):
        unsupervised_sequence("judo", gt, pred)


def test_mevis_matches_official() -> None:
    want = expected()["mevis"]
    results = {}
    for name, exp in want["per_expression"].items():
        seq = name.rsplit("_", 1)[0]
        gt, pred = stacks(seq)
        results[name] = expression_scores(np.isin(gt, exp["gt_ids"]), np.isin(pred, exp["pred_ids"]))
        assert_close(results[name].j_mean, exp["J"], f"{name} J")
        assert_close(results[name].f_mean, exp["F"], f"{name} F")
    summary = summarize_mevis(results)
    for key in ("J", "F", "J&F"):
        assert_close(summary[key], want[key], key)
        # The script's own printout differs from the recomputed mean in the last digit only.
        assert_close(summary[key], want["printed_by_script_one_run"][key], f"printed {key}")


def test_mevis_from_rle_matches_official_exactly() -> None:
    """The frame-by-frame RLE path (what `score rvos --protocol mevis` runs) gives the dense path's
    numbers bit for bit, GT unions of several objects included."""
    from pycocotools import mask as mask_utils

    for name, exp in expected()["mevis"]["per_expression"].items():
        seq = name.rsplit("_", 1)[0]
        gt, pred = stacks(seq)
        rles = [
            [RleMask(mask_utils.encode(np.asfortranarray((frame == g).astype(np.uint8))))
             for g in exp["gt_ids"] if (frame == g).any()]
            for frame in gt
        ]
        pred_bin = np.isin(pred, exp["pred_ids"]).astype(np.uint8) * 255
        got = windowed_expression_scores(rles, list(pred_bin), gt.shape[1:])
        dense = expression_scores(np.isin(gt, exp["gt_ids"]), pred_bin)
        np.testing.assert_array_equal(got.j, dense.j)
        np.testing.assert_array_equal(got.f, dense.f)
        counts = (got.intersection, got.union, got.pred_area)
        assert counts == (dense.intersection, dense.union, dense.pred_area)
        assert (got.j_mean, got.f_mean) == (exp["J"], exp["F"]), name


def _with_void_band(seq: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gt, pred = stacks(seq)
    gt = gt.copy()
    band = np.zeros(gt.shape, dtype=bool)
    band[:, 200:230, :] = True
    gt[band & (gt == 0)] = 255  # void only where the GT is background, as DAVIS annotations do
    gt[:, 300:310, 400:500] = 255  # and some void over objects
    return gt, pred, gt == 255


def test_unsupervised_excludes_gt_void_like_the_binary_functions() -> None:
    gt, pred, void = _with_void_band("judo")
    for o in unsupervised_sequence("judo", gt, pred):
        gt_mask = (gt == o.gt_id)
        pred_mask = (pred == o.pred_id)
        j, f = jaccard_and_f(gt_mask, pred_mask, void)
        np.testing.assert_allclose(o.j, j, rtol=0, atol=TOL)
        np.testing.assert_allclose(o.f, f, rtol=0, atol=TOL)


def test_semi_supervised_counts_gt_void_as_background() -> None:
    gt, pred, _ = _with_void_band("judo")
    pred = _relabel("judo", pred)
    for o in semi_supervised_sequence("judo", gt, pred):
        j, f = jaccard_and_f(gt[1:-1] == o.gt_id, pred[1:-1] == o.gt_id, None)
        np.testing.assert_allclose(o.j, j, rtol=0, atol=TOL)
        np.testing.assert_allclose(o.f, f, rtol=0, atol=TOL)
