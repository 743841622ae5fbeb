"""Dataset-level RVOS scoring from folders on disk (what `videoglamm score rvos` runs).

Protocols:

* `davis-semi`: DAVIS semi-supervised task; `--gt` and `--pred` are `<root>/<seq>/<frame>.png`.
* `davis-unsup`: DAVIS unsupervised task (Hungarian, <= 20 proposals), the Ref-DAVIS protocol of
  ReferFormer and VideoGLaMM; same layout.
* `mevis`: MeViS per-expression J&F; `--gt` is a split folder with `meta_expressions.json` and
  `mask_dict.json`, `--pred` is `<pred>/<video>/<exp_id>/<frame>.png`.

Every result also carries the false-positive-aware metrics (`no_target`) and the list of prediction
files that were missing and scored as empty masks (`missing_predictions`).
Deviations from the official tools, on purpose:

* a missing prediction file is an empty mask and is reported (DAVIS exits; MeViS drops the
  expression from the mean, or gives J = F = 0 when the whole video folder is missing);
* a prediction whose size differs from the GT raises `ShapeMismatchError` naming the file (DAVIS
  fails an assert, MeViS loses the expression in a dying worker);
* too many ids (semi-supervised ids above the object count, more than 20 proposals) raise
  `InputError` instead of `sys.exit`;
* MeViS predictions: any non-zero pixel value, or palette index, is foreground and the frame size
  comes from the GT RLE. The official script reads with OpenCV as grayscale, so a palette index whose
  colour is black would count as background there, and takes the size from `00000.png`;
* MeViS means run over expressions in metadata order (the official order depends on which worker
  finishes first, which moves the last digit);
* a MeViS RLE with more runs than its H x W pixels raises `DatasetError` (a pycocotools ValueError
  before), one whose size differs from the expression's frame size `ShapeMismatchError` (a numpy
  broadcast error before).

MeViS frames are scored one at a time from the RLEs and PNGs, only inside the box of both masks
(`metrics.windows`): no full-frame decode or conversion, identical numbers.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np

from videoglamm.errors import ConfigError, DatasetError, ShapeMismatchError
from videoglamm.metrics.davis import (
    ObjectResult, semi_supervised_sequence, summarize_davis, unsupervised_sequence,
)
from videoglamm.metrics.mask_io import (
    MevisSplit, iter_masks, list_frames, list_sequences, load_mevis_split, read_frames,
)
from videoglamm.metrics.mevis import ExpressionResult, summarize_mevis, windowed_expression_scores
from videoglamm.metrics.no_target import NoTargetSample, no_target_metrics
from videoglamm.metrics.rle import RleMask

__all__ = ["PROTOCOLS", "evaluate_rvos", "evaluate_davis", "evaluate_mevis"]

PROTOCOLS = ("davis-semi", "davis-unsup", "mevis")
T = TypeVar("T")


def _prefetched(loaders: Sequence[Callable[[], T]]) -> Iterator[T]:
    """Runs loader i+1 in a background thread while the caller scores item i."""
    if not loaders:
        return
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(loaders[0])
        for nxt in loaders[1:]:
            current = pending.result()
            pending = pool.submit(nxt)
            yield current
        yield pending.result()


def _run_jobs(
    load: Callable[[Any], Any] | None, score: Callable[[Any], T], job: Callable[[Any], T],
    items: Sequence[Any], workers: int, costs: Sequence[int] | None = None,
) -> Iterator[T]:
    """Returns an iterator of score(load(item)) in item order (score(item) when `load` is None: the
    scorer reads its inputs itself).

    One worker: loading of item i+1 overlaps scoring of item i in a thread. More workers: a process
    pool runs `job` (= score after load, a module-level function so it pickles) per item, largest
    `costs` first so the last job is a short one. The pool starts (forks) here, before the caller
    creates any progress-bar thread.
    """
    if workers <= 1 or len(items) <= 1:
        if load is None:
            return (score(item) for item in items)
        return (score(loaded) for loaded in _prefetched([lambda it=it: load(it) for it in items]))
    import multiprocessing

    # fork shares the already-loaded MeViS split with the workers; elsewhere spawn reloads it.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(min(workers, len(items)), mp_context=multiprocessing.get_context(method))
    order = sorted(range(len(items)), key=lambda i: -(costs[i] if costs else 0))
    futures = {i: pool.submit(job, items[i]) for i in order}

    def results() -> Iterator[T]:
        try:
            for i in range(len(items)):
                yield futures[i].result()
        finally:
            pool.shutdown(cancel_futures=True)

    return results()


def _progress(items: Iterator[T], desc: str, enabled: bool, total: int, unit: str = "seq") -> Iterator[T]:
    from tqdm import tqdm

    # disable=None hides the bar when stderr is not a terminal (logs, CI).
    return tqdm(items, desc=desc, unit=unit, total=total, disable=None if enabled else True)


def _read_davis(job: tuple[Path, Path, str, bool]):
    gt_root, pred_root, seq, semi = job
    frames = list_frames(gt_root / seq)
    gt, _ = read_frames([gt_root / seq / f"{f}.png" for f in frames])
    # The semi-supervised task never reads the first and last prediction frame.
    scored = frames[1:-1] if semi else frames
    pred_scored, missing = read_frames(
        [pred_root / seq / f"{f}.png" for f in scored], shape=gt.shape[1:], allow_missing=True
    )
    if semi:
        pred = np.zeros(gt.shape, dtype=pred_scored.dtype)
        pred[1:-1] = pred_scored
    else:
        pred = pred_scored
    return seq, gt, pred, missing, semi


def _score_davis(loaded) -> tuple[list[ObjectResult], list[str]]:
    seq, gt, pred, missing, semi = loaded
    score = semi_supervised_sequence if semi else unsupervised_sequence
    return score(seq, gt, pred), missing


def _davis_job(job: tuple[Path, Path, str, bool]) -> tuple[list[ObjectResult], list[str]]:
    return _score_davis(_read_davis(job))


def _relative(paths: list[str], root: Path) -> list[str]:
    return [os.path.relpath(p, root) for p in paths]


def evaluate_davis(
    gt_root: str | os.PathLike,
    pred_root: str | os.PathLike,
    protocol: str,
    sequences: Sequence[str] | None = None,
    progress: bool = True,
    workers: int = 1,
) -> dict[str, Any]:
    """Scores DAVIS-style folders with the semi-supervised or unsupervised protocol.

    Args:
        gt_root: `<gt>/<seq>/<frame>.png` label maps (255 = void).
        pred_root: `<pred>/<seq>/<frame>.png` label maps, frame names as in the GT.
        protocol: "davis-semi" or "davis-unsup".
        sequences: subset of sequences (default: every folder of `gt_root`).
        progress: show a tqdm bar on a terminal.
        workers: processes scoring sequences in parallel (results do not depend on it).

    Returns:
        JSON-ready dict with the official global names, `per_object`, `no_target`,
        `missing_predictions` and `protocol`.

    Raises:
        ConfigError: unknown protocol.
        ShapeMismatchError, InputError, FileNotFoundError, DatasetError: bad inputs (see mask_io).
    """
    if protocol not in ("davis-semi", "davis-unsup"):
        raise ConfigError(f"unknown DAVIS protocol {protocol!r}; use davis-semi or davis-unsup")
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    if not pred_root.is_dir():
        raise FileNotFoundError(f"prediction folder not found: {pred_root}")
    semi = protocol == "davis-semi"
    seqs = list_sequences(gt_root, sequences)
    jobs = [(gt_root, pred_root, s, semi) for s in seqs]
    objects: list[ObjectResult] = []
    missing: list[str] = []
    costs = [len(list((gt_root / s).glob("*.png"))) for s in seqs]
    results = _run_jobs(_read_davis, _score_davis, _davis_job, jobs, workers, costs)
    for seq_objects, seq_missing in _progress(results, protocol, progress, len(seqs)):
        objects.extend(seq_objects)
        missing.extend(seq_missing)
    samples = [NoTargetSample(o.intersection, o.union, o.gt_area == 0, o.pred_area == 0) for o in objects]
    return {
        "protocol": protocol,
        **summarize_davis(objects),
        "per_object": {o.label: {**o.stats, "gt_id": o.gt_id, "pred_id": o.pred_id} for o in objects},
        "no_target": no_target_metrics(samples),
        "sequences": seqs,
        "missing_predictions": _relative(missing, pred_root),
    }


_SPLITS: dict[Path, MevisSplit] = {}


def _mevis_split(root: Path) -> MevisSplit:
    # Cached per process: forked workers inherit the parent's copy instead of re-reading the JSON.
    if root not in _SPLITS:
        _SPLITS[root] = load_mevis_split(root)
    return _SPLITS[root]


def _score_mevis_expression(job: tuple[Path, Path, str, str, int]) -> tuple[str, ExpressionResult, list[str]]:
    """(name, scores, missing prediction files) of one expression; the last job field is the number
    of threads reading prediction PNGs ahead of the scoring."""
    split_root, pred_root, video, exp, read_threads = job
    split = _mevis_split(split_root)
    frames = split.frames(video)
    annos = split.expression_annos(video, exp)
    size = split.frame_size(video, exp)
    missing: list[str] = []
    paths = [pred_root / video / exp / f"{f}.png" for f in frames]
    try:
        gt = [[RleMask(rle) for a in annos if (rle := split.mask_dict[a][t])] for t in range(len(frames))]
        pred = iter_masks(paths, size, missing, threads=read_threads)
        scores = windowed_expression_scores(gt, pred, size)
    except (DatasetError, ShapeMismatchError) as err:  # say where: the mask checks only see one mask
        raise type(err)(f"MeViS video {video!r}, expression {exp!r} (ground truth: annotations {list(annos)} "
                         f"of {split_root / 'mask_dict.json'}): {err}") from err
    return f"{video}_{exp}", scores, missing


def evaluate_mevis(
    split_root: str | os.PathLike,
    pred_root: str | os.PathLike,
    videos: Sequence[str] | None = None,
    progress: bool = True,
    workers: int = 1,
) -> dict[str, Any]:
    """Scores MeViS-format predictions (`<pred>/<video>/<exp_id>/<frame>.png`) against a split.

    Args:
        split_root: folder with `meta_expressions.json` and `mask_dict.json`.
        pred_root: prediction folder.
        videos: subset of videos (default: all in the metadata).
        progress: show a tqdm bar on a terminal.
        workers: processes scoring expressions in parallel (results do not depend on it).

    Returns:
        JSON-ready dict with J, F, J&F, `per_expression` (`<video>_<exp_id>`), `no_target`,
        `missing_predictions` and `protocol`.

    Raises:
        ShapeMismatchError, InputError, FileNotFoundError, DatasetError: bad inputs.
    """
    split = _mevis_split(Path(split_root))
    pred_root = Path(pred_root)
    if not pred_root.is_dir():
        raise FileNotFoundError(f"prediction folder not found: {pred_root}")
    exprs = split.expressions(videos)
    # Serially, one thread decodes the next prediction PNGs while the current frame is scored (as
    # `_prefetched` does for DAVIS sequences); worker processes already keep every core busy. Jobs
    # are expressions, not videos, so the processes finish together.
    read_threads = 1 if workers <= 1 else 0
    jobs = [(Path(split_root), pred_root, video, exp, read_threads) for video, exp in exprs]
    costs = [len(split.frames(video)) for video, _ in exprs]
    scored = _run_jobs(None, _score_mevis_expression, _score_mevis_expression, jobs, workers, costs)
    results: dict[str, ExpressionResult] = {}
    missing_all: list[str] = []
    for name, result, missing in _progress(scored, "mevis", progress, len(jobs), "expr"):
        results[name] = result
        missing_all.extend(missing)
    samples = [
        NoTargetSample(r.intersection, r.union, r.gt_area == 0, r.pred_area == 0) for r in results.values()
    ]
    return {
        "protocol": "mevis",
        **summarize_mevis(results),
        "per_expression": {k: {"J": r.j_mean, "F": r.f_mean} for k, r in results.items()},
        "no_target": no_target_metrics(samples),
        "videos": list(dict.fromkeys(video for video, _ in exprs)),
        "missing_predictions": _relative(missing_all, pred_root),
    }


def evaluate_rvos(protocol: str, gt: str | os.PathLike, pred: str | os.PathLike,
                  sequences: Sequence[str] | None = None, progress: bool = True,
                  workers: int = 1) -> dict[str, Any]:
    """Dispatches to `evaluate_davis` or `evaluate_mevis` by protocol name (see `PROTOCOLS`).

    Raises:
        ConfigError: unknown protocol.
    """
    if protocol == "mevis":
        return evaluate_mevis(gt, pred, sequences, progress, workers)
    if protocol in ("davis-semi", "davis-unsup"):
        return evaluate_davis(gt, pred, protocol, sequences, progress, workers)
    raise ConfigError(f"unknown RVOS protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
