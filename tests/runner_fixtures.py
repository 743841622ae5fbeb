"""Tiny benchmark datasets in the real on-disk layouts, for the runner tests.

All start from `write_dataset` (synthetic videos in the Ref-YouTube-VOS layout) and rearrange or
re-encode its frames and palette masks into the layout of each benchmark.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from videoglamm.data.synthetic_io import write_dataset

FRAMES, SIZE = 4, (48, 64)


def synthetic(tmp: Path, videos: int, seed: int = 0) -> Path:
    """Flat synthetic dataset: JPEGImages/, Annotations/, meta_expressions.json, gcg/."""
    return write_dataset(tmp / "synthetic", videos, seed, num_frames=FRAMES, size=SIZE, progress=False)


def _meta(src: Path) -> dict:
    return json.loads((src / "meta_expressions.json").read_text())


def _labels(src: Path, video: str, frames: list[str]) -> np.ndarray:
    return np.stack([np.array(Image.open(src / "Annotations" / video / f"{f}.png")) for f in frames])


def ref_ytvos(tmp: Path) -> Path:
    """`meta_expressions/{valid,test}/meta_expressions.json` + `valid/JPEGImages`; the last of the 3
    videos is also in the test meta, so it is not a validation video."""
    src, root = synthetic(tmp, 3), tmp / "ref_ytvos"
    meta = _meta(src)
    (root / "meta_expressions" / "valid").mkdir(parents=True)
    (root / "meta_expressions" / "test").mkdir(parents=True)
    # The server splits carry no object ids.
    valid = {"videos": {v: {"frames": e["frames"],
                            "expressions": {k: {"exp": x["exp"]} for k, x in e["expressions"].items()}}
                        for v, e in meta["videos"].items()}}
    test_video = sorted(valid["videos"])[-1]
    test = {"videos": {test_video: valid["videos"][test_video]}}
    (root / "meta_expressions" / "valid" / "meta_expressions.json").write_text(json.dumps(valid))
    (root / "meta_expressions" / "test" / "meta_expressions.json").write_text(json.dumps(test))
    shutil.copytree(src / "JPEGImages", root / "valid" / "JPEGImages")
    return root


def mevis(tmp: Path, split: str, with_masks: bool = True, videos: int = 2) -> Path:
    """`<root>/<split>/{meta_expressions.json, mask_dict.json, JPEGImages}` with RLE masks."""
    from videoglamm.writers import rle_encode

    src, root = synthetic(tmp, videos), tmp / "mevis"
    split_root = root / split
    split_root.mkdir(parents=True)
    meta = _meta(src)
    out_videos, mask_dict, next_anno = {}, {}, 0
    for video, entry in meta["videos"].items():
        labels = _labels(src, video, entry["frames"])
        anno_of = {}
        for obj in sorted({x["obj_id"] for x in entry["expressions"].values()}):
            anno_of[obj] = str(next_anno)
            mask_dict[str(next_anno)] = [rle_encode(lab == int(obj)) if (lab == int(obj)).any() else None
                                         for lab in labels]
            next_anno += 1
        exps = {}
        for k, x in entry["expressions"].items():
            exps[k] = {"exp": x["exp"]}
            if with_masks:
                exps[k].update(obj_id=[int(x["obj_id"])], anno_id=[int(anno_of[x["obj_id"]])])
        out_videos[video] = {"frames": entry["frames"], "expressions": exps}
    (split_root / "meta_expressions.json").write_text(json.dumps({"videos": out_videos}))
    if with_masks:
        (split_root / "mask_dict.json").write_text(json.dumps(mask_dict))
    shutil.copytree(src / "JPEGImages", split_root / "JPEGImages")
    return root


def ref_davis(tmp: Path) -> Path:
    """ReferFormer's Ref-DAVIS17 layout: 4 expressions per object (one per annotator set), object-major,
    with `valid/Annotations` and `valid/Annotations_unsupervised` palette GT."""
    src, root = synthetic(tmp, 2), tmp / "ref_davis"
    meta = _meta(src)
    videos = {}
    for video, entry in meta["videos"].items():
        by_obj: dict[str, str] = {}
        for x in entry["expressions"].values():
            by_obj.setdefault(x["obj_id"], x["exp"])
        exps, n = {}, 0
        for obj in sorted(by_obj, key=int):
            for annotator in range(4):
                exps[str(n)] = {"exp": f"{by_obj[obj]} ({annotator})", "obj_id": obj}
                n += 1
        videos[video] = {"frames": entry["frames"], "expressions": exps}
    (root / "meta_expressions" / "valid").mkdir(parents=True)
    (root / "meta_expressions" / "valid" / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    shutil.copytree(src / "JPEGImages", root / "valid" / "JPEGImages")
    shutil.copytree(src / "Annotations", root / "valid" / "Annotations")
    shutil.copytree(src / "Annotations", root / "valid" / "Annotations_unsupervised")
    return root
