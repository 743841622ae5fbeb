"""DAVIS-2017 protocols: per-object statistics, semi-supervised and unsupervised (Hungarian) tasks.

Facts taken over from davis2017-evaluation (commit ac7c43f):

* GT objects are the ids 1..max id of the *first* GT frame; GT 255 is void.
* Semi-supervised: first and last frame dropped, GT 255 counted as background (no void), predicted
  ids must not exceed the GT object count, missing ids are empty masks.
* Unsupervised: all frames, 255 excluded as void, at most 20 predicted ids, fewer ids than GT objects
  are padded with empty masks; J and F of every (prediction, object) pair, cost = mean over frames of
  (J + F) / 2, maximised with `scipy.optimize.linear_sum_assignment`. Pairs come out ordered by
  prediction id and are labelled `<seq>_<k>` in that order, so label k need not be GT object k.
* Global numbers are plain means over all objects of all sequences; J&F-Mean = (J-Mean + F-Mean) / 2.

Deviation (on purpose): the official decay casts its bin edges to uint8, which wraps for 256 or more
frames and returns NaN. `db_statistics` uses integer edges, so it is identical up to 255 frames and
finite beyond.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from videoglamm.errors import InputError, ShapeMismatchError
from videoglamm.metrics.rvos import frame_scores

__all__ = [
    "MAX_PROPOSALS",
    "db_statistics",
    "ObjectResult",
    "score_label_stacks",
    "semi_supervised_sequence",
    "unsupervised_sequence",
    "summarize_davis",
]

MAX_PROPOSALS = 20
VOID_LABEL = 255


def db_statistics(values: np.ndarray, n_bins: int = 4) -> tuple[float, float, float]:
    """Mean, recall and decay of one object's per-frame values (DAVIS `db_statistics`).

    Args:
        values: (T,) per-frame J or F; NaN entries are ignored by mean and decay and count as
            "not above 0.5" in recall.
        n_bins: decay bins; decay = mean of the first bin - mean of the last bin. Neighbouring bins
            share their edge frame, as in the official code.

    Returns:
        (mean, recall, decay); recall uses a strict > 0.5.

    Raises:
        InputError: if `values` is empty.
    """
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim != 1 or vals.size == 0:
        raise InputError(f"db_statistics needs a non-empty 1-D vector, got shape {vals.shape}")
    edges = (np.round(np.linspace(1, len(vals), n_bins + 1) + 1e-10) - 1).astype(np.int64)
    bins = [vals[edges[i] : edges[i + 1] + 1] for i in range(n_bins)]
    with warnings.catch_warnings():
        # All-NaN slices give NaN, exactly as the official code (which silences the same warning).
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(vals)
        recall = np.nanmean(vals > 0.5)
        decay = np.nanmean(bins[0]) - np.nanmean(bins[-1])
    return float(mean), float(recall), float(decay)


@dataclass
class ObjectResult:
    """One scored object of one sequence.

    Attributes:
        label: official key `<sequence>_<k>`.
        gt_id: GT object id behind the label.
        pred_id: prediction id scored against it (0 for a padded empty proposal).
        j, f: (T,) per-frame values on the scored frames.
        intersection, union, pred_area: pixel counts summed over the scored frames (non-void).
    """

    label: str
    gt_id: int
    pred_id: int
    j: np.ndarray
    f: np.ndarray
    intersection: int
    union: int
    pred_area: int
    stats: dict[str, float] = field(init=False)

    @property
    def gt_area(self) -> int:
        return self.union - self.pred_area + self.intersection

    def __post_init__(self) -> None:
        jm, jr, jd = db_statistics(self.j)
        fm, fr, fd = db_statistics(self.f)
        self.stats = {
            "J-Mean": jm, "J-Recall": jr, "J-Decay": jd, "F-Mean": fm, "F-Recall": fr, "F-Decay": fd,
        }


@dataclass
class PairStacks:
    """J, F and counts of every (prediction, object) pair over frames: arrays (n_pred, n_gt, T)."""

    j: np.ndarray
    f: np.ndarray
    intersection: np.ndarray
    area_pred: np.ndarray
    area_gt: np.ndarray


def score_label_stacks(
    gt: np.ndarray,
    pred: np.ndarray,
    n_gt: int,
    n_pred: int,
    void: np.ndarray | None = None,
    bound_th: float = 0.008,
    diagonal: bool = False,
) -> PairStacks:
    """Scores every (prediction id, GT object) pair on every frame of label-map stacks.

    Args:
        gt, pred: (T, H, W) label maps.
        n_gt, n_pred: object / prediction id counts (ids 1..n).
        void: optional (T, H, W) mask of ignored pixels.
        bound_th: F tolerance.
        diagonal: only pairs (k, k) are needed; F is NaN elsewhere (see `frame_scores`).

    Returns:
        `PairStacks` with C-contiguous (n_pred, n_gt, T) arrays (the official layout, so means over
        frames round identically).

    Raises:
        ShapeMismatchError: if the stacks differ in shape.
    """
    if gt.shape != pred.shape:
        raise ShapeMismatchError(f"GT stack has shape {gt.shape} but the prediction stack has {pred.shape}")
    n_frames = gt.shape[0]
    shape = (n_frames, n_pred, n_gt)
    j, f, inter = np.empty(shape), np.empty(shape), np.empty(shape, np.int64)
    area_pred, area_gt = np.empty((n_frames, n_pred, 1), np.int64), np.empty((n_frames, 1, n_gt), np.int64)
    for t in range(n_frames):
        s = frame_scores(gt[t], pred[t], n_gt, n_pred, None if void is None else void[t], bound_th, diagonal)
        j[t], f[t], inter[t], area_pred[t], area_gt[t] = s.j, s.f, s.intersection, s.area_pred, s.area_gt
    move = lambda a: np.ascontiguousarray(np.moveaxis(a, 0, -1))  # noqa: E731
    return PairStacks(move(j), move(f), move(inter), move(area_pred), move(area_gt))


def _object_count(first_gt_frame: np.ndarray) -> int:
    first = np.where(first_gt_frame == VOID_LABEL, 0, first_gt_frame)
    return int(first.max())


def _result(seq: str, k: int, gt_id: int, pred_id: int, stacks: PairStacks, p: int, g: int) -> ObjectResult:
    inter = int(stacks.intersection[p, g].sum())
    pred_area = int(stacks.area_pred[p, 0].sum())
    union = pred_area + int(stacks.area_gt[0, g].sum()) - inter
    return ObjectResult(
        label=f"{seq}_{k}", gt_id=gt_id, pred_id=pred_id, j=stacks.j[p, g].copy(), f=stacks.f[p, g].copy(),
        intersection=inter, union=union, pred_area=pred_area,
    )


def semi_supervised_sequence(
    seq: str, gt: np.ndarray, pred: np.ndarray, bound_th: float = 0.008
) -> list[ObjectResult]:
    """DAVIS semi-supervised task on one sequence.

    Args:
        seq: sequence name (used in labels and errors).
        gt: (T, H, W) GT label maps of every frame (255 = void, counted as background here).
        pred: (T, H, W) predicted label maps; frames 0 and T-1 are not scored and may be zeros.
        bound_th: F tolerance.

    Returns:
        One `ObjectResult` per GT object, label `<seq>_<g>`, scored on frames 1..T-2.

    Raises:
        InputError: if a scored prediction frame holds an id above the GT object count, or T < 3.
        ShapeMismatchError: if the stacks differ in shape.
    """
    if gt.shape[0] < 3:
        raise InputError(
            f"{seq}: the semi-supervised task drops the first and last frame; it needs >= 3 frames, "
            f"got {gt.shape[0]}"
        )
    n_gt = _object_count(gt[0])
    # GT 255 needs no rewrite: ids above the object count are background for every object.
    gt_scored = gt[1:-1]
    pred_scored = pred[1:-1]
    n_pred = int(pred_scored.max()) if pred_scored.size else 0
    if n_pred > n_gt:
        raise InputError(
            f"{seq}: prediction holds object id {n_pred} but the GT has {n_gt} objects "
            "(semi-supervised ids must be 1..n_objects; use the unsupervised protocol for proposals)"
        )
    stacks = score_label_stacks(gt_scored, pred_scored, n_gt, n_gt, None, bound_th, diagonal=True)
    return [_result(seq, g + 1, g + 1, g + 1, stacks, g, g) for g in range(n_gt)]


def unsupervised_sequence(
    seq: str, gt: np.ndarray, pred: np.ndarray, max_proposals: int = MAX_PROPOSALS, bound_th: float = 0.008
) -> list[ObjectResult]:
    """DAVIS unsupervised task on one sequence: Hungarian matching of prediction ids to GT objects.

    Args:
        seq: sequence name.
        gt: (T, H, W) GT label maps (255 = void, excluded).
        pred: (T, H, W) predicted label maps with ids 1..n (n <= max_proposals).
        max_proposals: the official limit of 20 ids.
        bound_th: F tolerance.

    Returns:
        One `ObjectResult` per GT object, ordered by prediction id and labelled `<seq>_<k>` in that
        order (official behaviour).

    Raises:
        InputError: if the prediction has more than `max_proposals` ids.
        ShapeMismatchError: if the stacks differ in shape.
    """
    from scipy.optimize import linear_sum_assignment

    n_gt = _object_count(gt[0])
    n_real = int(pred.max()) if pred.size else 0
    if n_real > max_proposals:
        raise InputError(
            f"{seq}: prediction holds id {n_real}, more than the {max_proposals} proposals allowed"
        )
    n_pred = max(n_real, n_gt)  # missing proposals are empty masks, as in the official padding
    void = gt == VOID_LABEL
    stacks = score_label_stacks(gt, pred, n_gt, n_pred, void, bound_th)
    cost = (np.mean(stacks.j, axis=2) + np.mean(stacks.f, axis=2)) / 2
    rows, cols = linear_sum_assignment(-cost)
    return [
        _result(seq, k + 1, int(g) + 1, int(p) + 1 if p < n_real else 0, stacks, p, g)
        for k, (p, g) in enumerate(zip(rows, cols))
    ]


def summarize_davis(objects: list[ObjectResult]) -> dict[str, float]:
    """Global DAVIS numbers over all objects of all sequences.

    Args:
        objects: per-object results (any number of sequences).

    Returns:
        dict with J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay.

    Raises:
        InputError: if `objects` is empty.
    """
    if not objects:
        raise InputError("no objects to summarize: the GT has no object ids in any first frame")
    keys = ("J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
    means = {k: float(np.mean([o.stats[k] for o in objects])) for k in keys}
    return {"J&F-Mean": (means["J-Mean"] + means["F-Mean"]) / 2, **means}
