"""Grounded conversation generation (GCG) metrics, as GLaMM / VideoGLaMM compute them.

Objects are spatio-temporal volumes (T, H, W); IoU = sum_t |P & G| / sum_t |P | G| (0/0 is NaN, as
in the official `compute_iou`).

* mIoU: greedy one-to-one matching on the IoU matrix (take the max, ties to the first entry in
  row-major order, remove its row and column) while the max is > 0; mean of the matched IoUs, 0 when
  nothing matched. Unmatched masks are not penalised; a NaN entry stops the loop (official quirk).
* Recall: greedy on IoU; stop at the first best pair whose IoU < 0.5 or phrase similarity < 0.5 (no
  next-best is tried, official quirk); matches / GT phrases over the dataset. Phrase similarity is the
  cosine of sentence embeddings from a text encoder: the official `bert-base-uncased` mean pooling when
  it is available locally, else an encoder the caller supplies; results name the encoder used.
* AP50: class-agnostic COCO segm AP at IoU 0.5 (pycocotools, every score 1.0, maxDets 100). A volume
  is encoded as its frames stacked vertically, so COCO's mask IoU equals the volume IoU.
* CLAIR: only with a caller-supplied judge (the official one calls the OpenAI API).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from videoglamm.errors import CheckpointError, InputError

__all__ = [
    "TextEncoder",
    "NamedEncoder",
    "iou_matrix",
    "greedy_miou",
    "greedy_recall_matches",
    "bert_text_encoder",
    "resolve_text_encoder",
    "phrase_similarity",
    "ap50",
    "clair",
]

# Maps a list of strings to an (N, D) array of embeddings.
TextEncoder = Callable[[Sequence[str]], np.ndarray]
BERT_NAME = "bert-base-uncased"


@dataclass(frozen=True)
class NamedEncoder:
    """A text encoder and the name reported next to the recall it produced."""

    name: str
    encode: TextEncoder


def iou_matrix(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> np.ndarray:
    """Volume IoU of every (prediction, GT) pair.

    Args:
        preds: P masks of shape (T, H, W) (or (H, W)); non-zero is foreground.
        gts: G masks of the same shape.

    Returns:
        (P, G) float64; NaN where both volumes are empty.

    Raises:
        ShapeMismatchError: if shapes differ.
    """
    from videoglamm.errors import ShapeMismatchError

    shapes = {np.shape(m) for m in [*preds, *gts]}
    if len(shapes) > 1:
        raise ShapeMismatchError(f"GCG masks must share one shape, got {sorted(shapes)}")
    if not preds or not gts:
        return np.zeros((len(preds), len(gts)))
    p = np.stack([np.asarray(m).astype(bool).ravel() for m in preds]).astype(np.float64)
    g = np.stack([np.asarray(m).astype(bool).ravel() for m in gts]).astype(np.float64)
    # float64 dot products count pixels exactly (< 2**53).
    inter = p @ g.T
    union = p.sum(1)[:, None] + g.sum(1)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def greedy_miou(ious: np.ndarray) -> float:
    """GLaMM `compute_miou` matching on a (P, G) IoU matrix.

    Returns:
        Mean IoU of the greedily matched pairs, 0.0 if none matched.
    """
    mat = np.array(ious, dtype=np.float64)
    matched = []
    while mat.size > 0 and np.max(mat) > 0:
        r, c = np.unravel_index(np.argmax(mat), mat.shape)
        matched.append(mat[r, c])
        mat = np.delete(np.delete(mat, r, axis=0), c, axis=1)
    return float(np.mean(matched)) if matched else 0.0


def greedy_recall_matches(
    ious: np.ndarray, text_sim: np.ndarray, iou_th: float = 0.5, text_th: float = 0.5
) -> int:
    """GLaMM `find_best_matches`: number of (GT, prediction) matches for recall.

    Args:
        ious: (G, P) IoU of GT object g and predicted object p.
        text_sim: (G, P) similarity of their phrases.
        iou_th, text_th: both must be reached (>=) by the current best-IoU pair, else matching stops.

    Returns:
        Number of matches.
    """
    # Deviation: a 0/0 IoU (both volumes empty) counts as 0. The official loop picks a NaN as the
    # maximum and, since NaN < 0.5 is False, may count it as a match.
    iou = np.nan_to_num(np.array(ious, dtype=np.float64), nan=0.0)
    sim = np.array(text_sim, dtype=np.float64)
    if iou.shape != sim.shape:
        raise InputError(f"IoU matrix {iou.shape} and text similarity {sim.shape} differ in shape")
    matches = 0
    while iou.size and np.max(iou) > 0:
        g, p = np.unravel_index(np.argmax(iou), iou.shape)
        if iou[g, p] < iou_th or sim[g, p] < text_th:
            break
        matches += 1
        iou[g, :], iou[:, p], sim[g, :], sim[:, p] = 0, 0, 0, 0
    return matches


def bert_text_encoder(model_name: str = BERT_NAME) -> NamedEncoder:
    """The official phrase encoder: `bert-base-uncased`, mean of the last hidden state over all tokens
    ([CLS]/[SEP] included), truncation at 512, fp32 on CPU. Loads from the local cache only.

    Raises:
        CheckpointError: if transformers or the weights are not available locally.
    """
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as err:
        raise CheckpointError(f"the BERT phrase encoder needs torch and transformers: {err}") from err
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_name, local_files_only=True)
        model = AutoModel.from_pretrained(model_name, local_files_only=True).eval()
    except OSError as err:
        raise CheckpointError(
            f"{model_name} is not in the local Hugging Face cache ({err.__class__.__name__}); "
            "download it once or pass your own text encoder"
        ) from err

    def encode(texts: Sequence[str]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for text in texts:
                inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=512)
                out.append(model(**inputs).last_hidden_state[0].mean(dim=0).numpy())
        return np.stack(out) if out else np.zeros((0, model.config.hidden_size))

    return NamedEncoder(model_name, encode)


def resolve_text_encoder(
    fallback: TextEncoder | None = None, fallback_name: str = "custom", prefer_bert: bool = True
) -> NamedEncoder:
    """The local `bert-base-uncased` when available (and `prefer_bert`), else `fallback`.

    Raises:
        CheckpointError: if BERT is unavailable (or not preferred) and no fallback is given.
    """
    if not prefer_bert:
        if fallback is None:
            raise CheckpointError("no text encoder: pass one or allow the local bert-base-uncased")
        return NamedEncoder(fallback_name, fallback)
    try:
        return bert_text_encoder()
    except CheckpointError:
        if fallback is None:
            raise
        return NamedEncoder(fallback_name, fallback)


def phrase_similarity(
    encoder: NamedEncoder, gt_phrases: Sequence[str], pred_phrases: Sequence[str]
) -> np.ndarray:
    """(G, P) cosine similarity of phrase embeddings."""
    if not gt_phrases or not pred_phrases:
        return np.zeros((len(gt_phrases), len(pred_phrases)))
    a = np.asarray(encoder.encode(list(gt_phrases)), dtype=np.float64)
    b = np.asarray(encoder.encode(list(pred_phrases)), dtype=np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def _rle(volume: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    arr = np.asarray(volume).astype(bool)
    flat = arr.reshape(-1, arr.shape[-1]) if arr.ndim == 3 else arr
    return mask_utils.encode(np.asfortranarray(flat.astype(np.uint8)))


def ap50(samples: Sequence[tuple[Sequence[np.ndarray], Sequence[np.ndarray]]]) -> float:
    """Class-agnostic COCO segm AP at IoU 0.5 over samples (GLaMM's AP50).

    Args:
        samples: per video/image, (predicted masks, GT masks); masks (T, H, W) or (H, W).

    Returns:
        AP50 in [0, 1], or -1.0 when there is no GT (COCOeval's convention).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from pycocotools import mask as mask_utils

    images, annotations, detections = [], [], []
    for image_id, (preds, gts) in enumerate(samples, start=1):
        shape = np.shape(gts[0] if gts else preds[0]) if (gts or preds) else (1, 1)
        flat_h = int(np.prod(shape[:-1]))
        images.append({"id": image_id, "height": flat_h, "width": int(shape[-1])})
        for g in gts:
            rle = _rle(g)
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "segmentation": rle, "area": float(mask_utils.area(rle)),
                "bbox": mask_utils.toBbox(rle).tolist(),
            })
        for p in preds:
            detections.append({"image_id": image_id, "category_id": 1, "segmentation": _rle(p), "score": 1.0})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools narrates every step on stdout
        gt.createIndex()
        if not detections:
            return 0.0 if annotations else -1.0
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, "segm")
        ev.params.imgIds = [im["id"] for im in images]
        ev.params.catIds = [1]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1])


def clair(
    refs: dict[str, Sequence[str]], preds: dict[str, str], judge: Callable[[str, Sequence[str]], float]
) -> float:
    """Mean CLAIR score with a caller-supplied judge.

    Args:
        refs: id -> reference captions.
        preds: id -> predicted caption.
        judge: returns a score in [0, 1] for (candidate, references), e.g. an LLM prompted as in CLAIR.

    Returns:
        Mean judge score over ids.

    Raises:
        InputError: mismatched ids or a score outside [0, 1].
    """
    if set(refs) != set(preds) or not refs:
        raise InputError("CLAIR needs the same non-empty id set in refs and preds")
    scores = []
    for k in refs:
        s = float(judge(preds[k], list(refs[k])))
        if not 0.0 <= s <= 1.0:
            raise InputError(f"CLAIR judge returned {s} for {k!r}; scores must be in [0, 1]")
        scores.append(s)
    return float(np.mean(scores))
