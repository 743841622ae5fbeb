"""Hand-built cases for the no-target, GCG and visual grounding metrics."""

from __future__ import annotations

import numpy as np
import pytest

from videoglamm.errors import InputError, ShapeMismatchError
from videoglamm.metrics.gcg import (
    NamedEncoder, ap50, greedy_miou, greedy_recall_matches, iou_matrix, phrase_similarity,
)
from videoglamm.metrics.grounding import VGSample, box_iou, masks_to_boxes, score_vg_sample, summarize_vg
from videoglamm.metrics.no_target import NoTargetSample, no_target_metrics


def test_no_target_metrics_follow_gres() -> None:
    samples = [
        NoTargetSample(0, 0, gt_empty=True, pred_empty=True),     # TP: IoU 1, adds nothing
        NoTargetSample(0, 30, gt_empty=True, pred_empty=False),   # FN: IoU 0, U += 30
        NoTargetSample(0, 50, gt_empty=False, pred_empty=True),   # FP: IoU 0, U += 50
        NoTargetSample(40, 80, gt_empty=False, pred_empty=False),  # TN: IoU 0.5
        NoTargetSample(20, 20, gt_empty=False, pred_empty=False),  # TN: IoU 1
    ]
    m = no_target_metrics(samples)
    assert m["N-acc"] == pytest.approx(1 / 2)
    assert m["T-acc"] == pytest.approx(2 / 3)
    assert m["gIoU"] == pytest.approx((1 + 0 + 0 + 0.5 + 1) / 5)
    assert m["cIoU"] == pytest.approx(60 / (30 + 50 + 80 + 20))
    assert (m["no_target_samples"], m["target_samples"]) == (2, 3)


def test_no_target_without_empty_gt_has_undefined_n_acc() -> None:
    m = no_target_metrics([NoTargetSample(5, 10, False, False)])
    assert m["N-acc"] is None and m["T-acc"] == 1.0 and m["cIoU"] == 0.5


def _volume(frames: int, box: tuple[int, int, int, int]) -> np.ndarray:
    v = np.zeros((frames, 10, 10), bool)
    y0, x0, y1, x1 = box
    v[:, y0:y1, x0:x1] = True
    return v


def test_gcg_volume_iou_and_greedy_miou() -> None:
    a = _volume(2, (0, 0, 4, 4))         # 32 px
    b = _volume(2, (0, 0, 4, 2))         # 16 px, inside a
    c = _volume(2, (6, 6, 10, 10))
    empty = np.zeros((2, 10, 10), bool)
    ious = iou_matrix([a, c], [b, c, a])
    np.testing.assert_allclose(ious, [[0.5, 0.0, 1.0], [0.0, 1.0, 0.0]])
    # Greedy: a<->a (1.0), then c<->c (1.0); GT b stays unmatched and is not penalised.
    assert greedy_miou(ious) == 1.0
    assert greedy_miou(iou_matrix([b], [a])) == 0.5
    assert greedy_miou(np.zeros((0, 3))) == 0.0
    # 0/0 IoU is NaN, which stops the official loop before anything is matched.
    assert np.isnan(iou_matrix([empty], [empty])[0, 0])
    assert greedy_miou(iou_matrix([empty], [empty])) == 0.0
    with pytest.raises(ShapeMismatchError):
        iou_matrix([a], [np.zeros((3, 10, 10))])


def test_gcg_recall_stops_at_first_failing_pair() -> None:
    ious = np.array([[0.9, 0.0], [0.0, 0.7]])
    assert greedy_recall_matches(ious, np.ones((2, 2))) == 2
    # Best pair fails the text test: matching stops although (1, 1) would pass.
    assert greedy_recall_matches(ious, np.array([[0.2, 1.0], [1.0, 1.0]])) == 0
    assert greedy_recall_matches(np.array([[0.4]]), np.ones((1, 1))) == 0


def test_phrase_similarity_uses_given_encoder() -> None:
    table = {"a dog": [1.0, 0.0], "the dog": [2.0, 0.0], "a cat": [0.0, 1.0]}
    enc = NamedEncoder("toy", lambda texts: np.array([table[t] for t in texts]))
    np.testing.assert_allclose(phrase_similarity(enc, ["a dog"], ["the dog", "a cat"]), [[1.0, 0.0]])


def test_ap50_class_agnostic() -> None:
    a, c = _volume(2, (0, 0, 4, 4)), _volume(2, (6, 6, 10, 10))
    assert ap50([([a, c], [a, c])]) == pytest.approx(1.0)
    # One of two GT found, plus a false positive ranked first (insertion order, equal scores).
    assert 0.0 < ap50([([_volume(2, (0, 5, 3, 9)), a], [a, c])]) < 1.0


def test_vg_boxes_from_masks_drop_small_components() -> None:
    m = np.zeros((20, 30), np.uint8)
    m[2:8, 3:10] = 255    # 42 px kept
    m[15:18, 20:22] = 1   # 6 px removed (< 20)
    np.testing.assert_array_equal(masks_to_boxes(m), [3, 2, 9, 7])
    assert np.isnan(masks_to_boxes(np.zeros((5, 5)))).all()
    assert box_iou(masks_to_boxes(np.zeros((5, 5))), [0, 0, 4, 4]) == 0.0


def test_vg_box_iou_and_per_qtype_means() -> None:
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    pred, gt = np.array([[0, 0, 2, 2], [0, 0, 2, 2]]), np.array([[0, 0, 2, 2], [4, 4, 6, 6]])
    np.testing.assert_allclose(box_iou(pred, gt), [1, 0])
    s1 = VGSample("v1", "interrogative", [0, 1], {0: [0, 0, 10, 10], 1: [0, 0, 10, 10]},
                  {0: [0, 0, 10, 10], 1: [5, 0, 15, 10]})
    s2 = VGSample("v2", "declarative", [0], {0: [0, 0, 10, 10]}, {})
    per = {s.video_id: score_vg_sample(s) for s in (s1, s2)}
    assert per["v1"]["gt_viou"] == pytest.approx((1 + 1 / 3) / 2)
    assert per["v1"]["gt_viou@0.5"] == 1.0 and per["v2"]["gt_viou"] == 0.0 and s2.missing == [0]
    summary = summarize_vg(per, {"v1": "interrogative", "v2": "declarative"})
    assert summary["all"]["gt_viou"] == pytest.approx((2 / 3) / 2) and summary["declarative"]["count"] == 1
    with pytest.raises(InputError):
        score_vg_sample(VGSample("v3", "x", [0], {}, {}))


def test_importing_metrics_and_cli_is_cheap() -> None:
    import subprocess
    import sys

    code = ("import sys, videoglamm.metrics, videoglamm.cli.score; "
            "heavy = [m for m in ('torch', 'scipy', 'pycocotools', 'pycocoevalcap', 'numpy') "
            "if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_evaluate_gcg_layout(tmp_path) -> None:
    import json

    from PIL import Image

    from videoglamm.metrics.evaluate_gcg import evaluate_gcg

    def write(root, objects, caption, phrases):
        (root).mkdir()
        (root / "gcg.json").write_text(json.dumps({"vid": {"caption": caption, "phrases": phrases}}))
        for k, frames in enumerate(objects):
            folder = root / "vid" / str(k)
            folder.mkdir(parents=True, exist_ok=True)
            for name, arr in frames.items():
                Image.fromarray(arr.astype(np.uint8) * 255, mode="L").save(folder / f"{name}.png")

    a, c = _volume(2, (0, 0, 4, 4)), _volume(2, (6, 6, 10, 10))
    gt_objects = [{"0": a[0], "1": a[1]}, {"0": c[0], "1": c[1]}]
    write(tmp_path / "gt", gt_objects, "a dog and a cat", ["dog", "cat"])
    # Predicted object 0 = the cat, object 1 = the dog with frame 1 missing.
    write(tmp_path / "pred", [{"0": c[0], "1": c[1]}, {"0": a[0]}], "a cat and a dog", ["cat", "dog"])
    vectors = {"dog": [1.0, 0.0], "cat": [0.0, 1.0]}
    result = evaluate_gcg(tmp_path / "gt", tmp_path / "pred", lambda t: np.array([vectors[x] for x in t]),
                          "toy", captions=False, prefer_bert=False)
    assert result["missing_predictions"] == ["vid/1/1.png"]
    assert result["mIoU"] == pytest.approx((1.0 + 0.5) / 2)
    assert result["recall"] == 1.0 and result["recall_encoder"] == "toy"  # both IoU >= 0.5, phrases match
    assert result["AP50"] == pytest.approx(1.0)
