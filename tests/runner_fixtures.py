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


def _objects(src: Path, video: str, frames: list[str]) -> dict[int, np.ndarray]:
    labels = _labels(src, video, frames)
    return {int(i): labels == i for i in np.unique(labels) if i}


def mevis_gcg(tmp: Path) -> tuple[Path, Path]:
    """(caption folder, MeViS valid_u split): `[phrase](anno ids)` captions over the split's mask_dict."""
    root = mevis(tmp, "valid_u", videos=1)
    split = root / "valid_u"
    meta = json.loads((split / "meta_expressions.json").read_text())["videos"]
    captions = tmp / "mevis_gcg" / "valid_u"
    captions.mkdir(parents=True)
    for video, entry in meta.items():
        anno = {str(x["obj_id"][0]): str(x["anno_id"][0]) for x in entry["expressions"].values()}
        caption = " ".join(f"A [{_first_exp(entry, obj)}]({anno[obj]}) moves." for obj in sorted(anno))
        (captions / f"{video}.json").write_text(json.dumps({"caption": caption}))
    return captions, split


def _first_exp(entry: dict, obj: str) -> str:
    return next(x["exp"] for x in entry["expressions"].values() if str(x["obj_id"][0]) == obj)


def vidstg_gcg(tmp: Path) -> tuple[Path, Path]:
    """(caption folder, split): `<split>/<video>/frames/*.jpg` + `masks/<obj:03d>/<frame>.png`."""
    src = synthetic(tmp, 1)
    split, captions = tmp / "vidstg_gcg" / "val", tmp / "vidstg_gcg" / "val_captions"
    captions.mkdir(parents=True)
    for video, entry in _meta(src)["videos"].items():
        shutil.copytree(src / "JPEGImages" / video, split / video / "frames")
        for obj, masks in _objects(src, video, entry["frames"]).items():
            folder = split / video / "masks" / f"{obj:03d}"
            folder.mkdir(parents=True)
            for name, mask in zip(entry["frames"], masks):
                if mask.any():  # an absent object has no PNG for that frame
                    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(folder / f"{name}.png")
        caption = " and ".join(f"[object {obj}]({obj})" for obj in sorted(_objects(src, video, entry["frames"])))
        (captions / f"{video}.json").write_text(json.dumps({"caption": caption + " move."}))
    return captions, split


def burst_ytvis(tmp: Path) -> tuple[Path, Path]:
    """(instruction JSON, BURST frames root) with `dense_cap` word positions and RLE annotations."""
    from videoglamm.writers import rle_encode

    src = synthetic(tmp, 1)
    frames_root, videos, annotations = tmp / "burst" / "frames" / "test", [], []
    for video, entry in _meta(src)["videos"].items():
        shutil.copytree(src / "JPEGImages" / video, frames_root / "YFCC100M" / video)
        objects = _objects(src, video, entry["frames"])
        words, token_pos, mask_id = [], [], []
        for obj, masks in objects.items():
            ann_id = len(annotations) + 1
            annotations.append({"id": ann_id, "segmentations": [rle_encode(m) if m.any() else None for m in masks]})
            words += ["a", f"shape{obj}", "moves"]
            token_pos.append(len(words) - 2)
            mask_id.append(ann_id)
        videos.append({"id": len(videos) + 1, "file_names": [f"YFCC100M/{video}/{f}.jpg" for f in entry["frames"]],
                       "width": SIZE[1], "height": SIZE[0], "length": len(entry["frames"]),
                       "metadata": {"dataset": "burst"},
                       "dense_cap": {"caption": " ".join(words), "token_pos": token_pos, "mask_id": mask_id}})
    path = tmp / "video_gcg" / "instruction_data" / "test.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"videos": videos, "annotations": annotations}))
    return path, frames_root


def stvg(tmp: Path, hcstvg: bool) -> tuple[Path, Path]:
    """(TubeDETR-style annotation JSON, frames root) for VidSTG (trajectories + qtype) or HC-STVG
    (per-record "trajectory" list, no qtype)."""
    src = synthetic(tmp, 2)
    frames_root, records, trajectories = tmp / "stvg_frames", [], {}
    for n, (video, entry) in enumerate(_meta(src)["videos"].items()):
        shutil.copytree(src / "JPEGImages" / video, frames_root / video)
        obj, masks = next(iter(_objects(src, video, entry["frames"]).items()))
        boxes = {}
        for t, m in enumerate(masks):
            ys, xs = np.nonzero(m)
            if ys.size:
                boxes[t] = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min()), float(ys.max() - ys.min())]
        tube = (1, len(masks))
        record = {"video_id": n, "video_path": f"{video}.mp4", "caption": entry["expressions"]["0"]["exp"],
                  "start_frame": 0, "end_frame": len(masks), "tube_start_frame": tube[0],
                  "tube_end_frame": tube[1], "fps": 2}
        if hcstvg:
            record["trajectory"] = [boxes.get(t) for t in range(*tube)]
        else:
            record.update(original_video_id=video, target_id=obj, qtype=("declarative", "interrogative")[n % 2])
            trajectories[video] = {str(obj): {str(t): {"bbox": b} for t, b in boxes.items()}}
        records.append(record)
    path = tmp / "stvg.json"
    path.write_text(json.dumps({"videos": records, "trajectories": trajectories}))
    return path, frames_root
