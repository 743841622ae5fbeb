"""RefCOCO-style image referring segmentation, served as 1-frame videos.

Layout (the refer toolkit's `refs(*).p` pickle re-saved as JSON, next to COCO instances)::

    instances.json   COCO: images [{id, file_name, height, width}],
                           annotations [{id, image_id, category_id, segmentation}], categories [{id, name}]
    refs.json        [{ref_id, ann_id, image_id, split, sentences: [{"sent": text}, ...]}]
    image_dir/<file_name>

One sample per referred object: one question with a randomly chosen sentence of that object and one
`[SEG]` answer (the official image loaders produced a conversation without the image or the phrase).
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from videoglamm.data.base import BadSampleError, ReaderBase
from videoglamm.data.io import check_mask_size, decode_polygons, decode_rle, load_rgb, read_json
from videoglamm.data.schema import Sample
from videoglamm.data.templates import image_seg_question, seg_answer
from videoglamm.errors import DatasetError


class RefCOCOReader(ReaderBase):
    """RefCOCO / RefCOCO+ / RefCOCOg reader.

    Args:
        instances_path: COCO instances JSON.
        refs_path: refs JSON (list of refs).
        image_dir: folder of the COCO images.
        split: keep refs of this split ("train", "val", ...); None keeps all.
        dataset_name, max_bad_fraction, seed: see `ReaderBase`.

    Raises:
        DatasetError: a JSON file is unreadable or no ref is left.
    """

    def __init__(self, instances_path: Path, refs_path: Path, image_dir: Path, *, split: str | None = "train",
                 dataset_name: str = "refcoco", max_bad_fraction: float = 0.05, seed: int = 0) -> None:
        super().__init__(dataset_name, max_bad_fraction=max_bad_fraction, seed=seed)
        self.image_dir = Path(image_dir)
        try:
            instances, refs = read_json(Path(instances_path)), read_json(Path(refs_path))
        except BadSampleError as err:
            raise DatasetError(f"{dataset_name}: {err}") from None
        self.images = {img["id"]: img for img in instances["images"]}
        self.anns = {ann["id"]: ann for ann in instances["annotations"]}
        self.categories = {cat["id"]: cat["name"] for cat in instances.get("categories", [])}
        self.refs_path = Path(refs_path)
        for ref in refs:
            if split is not None and ref.get("split") != split:
                continue
            known = ref.get("ann_id") in self.anns and ref.get("image_id") in self.images
            if not known or not ref.get("sentences"):
                self._index_bad(f"{self.refs_path} ref {ref.get('ref_id')}",
                                BadSampleError("unknown ann_id/image_id or no sentences"))
                continue
            self._records.append(ref)
        self._finish_index()

    def _record_key(self, record: dict) -> str:
        return f"{self.refs_path} ref {record.get('ref_id')}"

    def _load(self, record: dict, rng: random.Random) -> Sample:
        image_info, ann = self.images[record["image_id"]], self.anns[record["ann_id"]]
        path = self.image_dir / image_info["file_name"]
        frame = load_rgb(path)
        seg = ann.get("segmentation")
        where = f"annotation {ann['id']} of {path}"
        if isinstance(seg, list) and seg:
            mask = decode_polygons(seg, frame.height, frame.width)
        elif isinstance(seg, dict):
            mask = decode_rle(seg, where)
        else:
            raise BadSampleError(f"{where} has no polygon or RLE segmentation")
        check_mask_size(mask, frame, where)
        if not mask.any():
            raise BadSampleError(f"{where} has an empty mask")
        sentence = rng.choice(record["sentences"])
        text = sentence["sent"] if isinstance(sentence, dict) else str(sentence)
        return Sample(frames=[frame], prompt=image_seg_question(rng, text), answer=seg_answer(rng),
                      masks=torch.from_numpy(mask[None, None].astype(bool)), task="image_seg",
                      source=f"{self.dataset_name}/{image_info['file_name']}/{record.get('ref_id')}",
                      frame_indices=[0],
                      meta={"exp_id": record.get("ref_id"), "exp": text,
                            "category": self.categories.get(ann.get("category_id"))})
