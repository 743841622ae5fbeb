"""`videoglamm score` end to end on the parity fixture: layouts, JSON names, typed errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from videoglamm.cli import main

DATA = Path(__file__).parent / "data" / "rvos_parity"
EXPECTED = json.loads((DATA / "expected_visible.json").read_text())


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8), mode="L").save(path)


def _mevis_layout(tmp: Path, seqs: list[str]) -> tuple[Path, Path]:
    """MeViS split (meta_expressions.json + RLE mask_dict.json) and 0/255 predictions, built as
    SOURCE.md describes for the expected MeViS numbers."""
    from pycocotools import mask as mask_utils

    split, pred_root = tmp / "split", tmp / "pred"
    split.mkdir()
    videos, mask_dict = {}, {}
    for seq in seqs:
        frames = sorted(p.stem for p in (DATA / "gt" / seq).glob("*.png"))
        gt = np.stack([np.array(Image.open(DATA / "gt" / seq / f"{f}.png")) for f in frames])
        pred = np.stack([np.array(Image.open(DATA / "pred" / seq / f"{f}.png")) for f in frames])
        exprs = {}
        for name, exp in EXPECTED["mevis"]["per_expression"].items():
            video, exp_id = name.rsplit("_", 1)
            if video != seq:
                continue
            anno_ids = []
            for g in exp["gt_ids"]:
                anno = f"{seq}-{g}"
                mask_dict[anno] = [
                    None if not (gt[t] == g).any()
                    else {**(r := mask_utils.encode(np.asfortranarray((gt[t] == g).astype(np.uint8)))),
                          "counts": r["counts"].decode()}
                    for t in range(len(frames))
                ]
                anno_ids.append(anno)
            exprs[exp_id] = {"exp": f"object {exp['gt_ids']}", "anno_id": anno_ids, "obj_id": exp["gt_ids"]}
            for t, f in enumerate(frames):
                _png(pred_root / seq / exp_id / f"{f}.png", np.isin(pred[t], exp["pred_ids"]) * 255)
        videos[seq] = {"frames": frames, "expressions": exprs}
    (split / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    (split / "mask_dict.json").write_text(json.dumps(mask_dict))
    return split, pred_root


def test_rvos_mevis_cli_matches_official_and_reports_missing(tmp_path: Path) -> None:
    split, pred = _mevis_layout(tmp_path, ["judo"])
    out = tmp_path / "out" / "mevis.json"
    assert main(["score", "rvos", "--protocol", "mevis", "--gt", str(split), "--pred", str(pred),
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["protocol"] == "mevis" and result["missing_predictions"] == []
    for name, got in result["per_expression"].items():
        want = EXPECTED["mevis"]["per_expression"][name]
        assert got["J"] == pytest.approx(want["J"], abs=1e-9)
        assert got["F"] == pytest.approx(want["F"], abs=1e-9)
    assert set(result["no_target"]) >= {"N-acc", "T-acc", "gIoU", "cIoU"}

    # A missing frame is an empty mask and is reported (the official tool drops the expression).
    (pred / "judo" / "0" / "00005.png").unlink()
    assert main(["score", "rvos", "--protocol", "mevis", "--gt", str(split), "--pred", str(pred),
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["missing_predictions"] == ["judo/0/00005.png"]
    assert result["per_expression"]["judo_0"]["J"] < EXPECTED["mevis"]["per_expression"]["judo_0"]["J"]


def test_rvos_size_mismatch_names_the_file(tmp_path: Path, capsys) -> None:
    split, pred = _mevis_layout(tmp_path, ["judo"])
    bad = pred / "judo" / "1" / "00003.png"
    _png(bad, np.zeros((480, 853)))
    code = main(["score", "rvos", "--protocol", "mevis", "--gt", str(split), "--pred", str(pred)])
    assert code == 2
    err = capsys.readouterr().err
    assert "judo/1/00003.png" in err and "853x480" in err and err.count("\n") == 1


def test_rvos_corrupt_gt_rle_names_mask_dict_and_expression(tmp_path: Path, capsys) -> None:
    split, pred = _mevis_layout(tmp_path, ["judo"])
    mask_dict = json.loads((split / "mask_dict.json").read_text())
    anno = next(iter(mask_dict))
    t = next(i for i, rle in enumerate(mask_dict[anno]) if rle)
    h, w = mask_dict[anno][t]["size"]
    mask_dict[anno][t] = {"size": [h, w], "counts": [h * w, 5]}  # runs cover more pixels than the frame has
    (split / "mask_dict.json").write_text(json.dumps(mask_dict))
    code = main(["score", "rvos", "--protocol", "mevis", "--gt", str(split), "--pred", str(pred)])
    assert code == 2
    err = capsys.readouterr().err
    assert "mask_dict.json" in err and "'judo'" in err and anno in err and "corrupt" in err
    assert err.count("\n") == 1


def test_rvos_davis_cli_semi_and_unsup(tmp_path: Path) -> None:
    seq = "judo"
    relabel = EXPECTED["semi_supervised"]["prediction_relabel"][seq]
    lut = np.zeros(256, np.uint8)
    for src, dst in relabel.items():
        lut[int(src)] = dst
    semi_pred = tmp_path / "semi"
    for path in sorted((DATA / "pred" / seq).glob("*.png")):
        _png(semi_pred / seq / path.name, lut[np.array(Image.open(path))])
    out = tmp_path / "semi.json"
    assert main(["score", "rvos", "--protocol", "davis-semi", "--gt", str(DATA / "gt"),
                 "--pred", str(semi_pred),
                 "--sequences", seq, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    for label, stats in result["per_object"].items():
        for key, value in EXPECTED["semi_supervised"]["per_object"][label].items():
            assert stats[key] == pytest.approx(value, abs=1e-9)
    assert {"J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"} <= set(result)

    # Unsupervised on the shipped proposals; a missing frame is reported and scored empty.
    unsup_pred = tmp_path / "unsup"
    shutil.copytree(DATA / "pred" / seq, unsup_pred / seq)
    assert main(["score", "rvos", "--protocol", "davis-unsup", "--gt", str(DATA / "gt"),
                 "--pred", str(unsup_pred),
                 "--sequences", seq, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["protocol"] == "davis-unsup" and result["missing_predictions"] == []
    for label, stats in result["per_object"].items():
        want = EXPECTED["unsupervised"]["per_object"][label]["J-Mean"]
        assert stats["J-Mean"] == pytest.approx(want, abs=1e-9)
    (unsup_pred / seq / "00010.png").unlink()
    assert main(["score", "rvos", "--protocol", "davis-unsup", "--gt", str(DATA / "gt"),
                 "--pred", str(unsup_pred),
                 "--sequences", seq, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["missing_predictions"] == ["judo/00010.png"]


def test_cli_missing_folder_is_one_line_error(tmp_path: Path, capsys) -> None:
    code = main(["score", "rvos", "--protocol", "davis-unsup", "--gt", str(DATA / "gt"),
                 "--pred", str(tmp_path / "nope")])
    assert code == 2
    err = capsys.readouterr().err
    assert "prediction folder not found" in err and err.count("\n") == 1


def test_vg_cli_with_masks_and_spans(tmp_path: Path) -> None:
    gt = {"v1": {"qtype": "interrogative", "frames": [0, 1, 2, 3], "span": [1, 3],
                 "boxes": {"1": [10, 10, 29, 29], "2": [10, 10, 29, 29]}}}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 255  # box (10, 10, 29, 29)
    _png(tmp_path / "pred" / "v1" / "00001.png", mask)
    (tmp_path / "pred" / "spans.json").write_text(json.dumps({"v1": [1, 4]}))
    out = tmp_path / "vg.json"
    assert main(["score", "vg", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred"),
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    video = result["per_video"]["v1"]
    assert video["gt_viou"] == pytest.approx(0.5)  # frame 1 exact, frame 2 missing
    assert video["tiou"] == pytest.approx(2 / 3)
    assert video["viou"] == pytest.approx(1 / 3)  # IoU sum 1 over frames 1, 2, 3 of the union
    assert result["missing_predictions"] == ["v1/00002"]
    assert result["per_qtype"]["interrogative"]["gt_viou@0.3"] == 1.0


def test_worker_processes_give_identical_results(tmp_path: Path) -> None:
    from videoglamm.metrics.evaluate_rvos import evaluate_rvos

    args = ("davis-unsup", DATA / "gt", DATA / "pred", ["judo", "blackswan"])
    assert evaluate_rvos(*args, progress=False, workers=2) == evaluate_rvos(*args, progress=False, workers=1)
    split, pred = _mevis_layout(tmp_path, ["judo", "blackswan"])
    (pred / "judo" / "1" / "00004.png").unlink()
    serial = evaluate_rvos("mevis", split, pred, progress=False, workers=1)
    assert serial["missing_predictions"] == ["judo/1/00004.png"]
    assert evaluate_rvos("mevis", split, pred, progress=False, workers=2) == serial
