"""Window masks (COCO RLE against pycocotools, PNG, array) and windowed MeViS scoring against the
dense path."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from videoglamm.errors import DatasetError, ShapeMismatchError
from videoglamm.metrics.mevis import expression_scores, windowed_expression_scores
from videoglamm.metrics.rle import RleMask, rle_counts
from videoglamm.metrics.rvos import binary_window_scores, boundary_half_widths


def _encode(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {**rle, "counts": rle["counts"].decode()}


def _random_masks(rng: np.random.Generator, shape: tuple[int, int], n: int) -> list[np.ndarray]:
    """Blobs, full and empty frames, single pixels, edge-touching shapes."""
    height, width = shape
    masks = [np.zeros(shape, bool), np.ones(shape, bool)]
    for _ in range(n):
        mask = np.zeros(shape, bool)
        for _ in range(int(rng.integers(1, 4))):
            y0, x0 = rng.integers(0, height), rng.integers(0, width)
            mask[y0 : y0 + rng.integers(1, height + 1), x0 : x0 + rng.integers(1, width + 1)] = True
        mask ^= rng.random(shape) < 0.02
        masks.append(mask)
    return masks


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (17, 23), (48, 31)])
def test_rle_mask_box_and_windows_match_pycocotools(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    for mask in _random_masks(rng, shape, 20):
        rle = _encode(mask)
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), mask)  # the fixture is sound
        m = RleMask(rle)
        assert m.area == int(mask.sum())
        ys, xs = np.nonzero(mask)
        assert m.box() == (None if ys.size == 0 else (ys.min(), ys.max(), xs.min(), xs.max()))
        for _ in range(5):
            y0, y1 = sorted(rng.integers(0, shape[0] + 1, 2))
            x0, x1 = sorted(rng.integers(0, shape[1] + 1, 2))
            window = m.transposed_window(slice(y0, y1), slice(x0, x1))
            np.testing.assert_array_equal(window, mask[y0:y1, x0:x1].T)


def test_rle_counts_reads_strings_bytes_and_lists() -> None:
    mask = np.zeros((300, 200), bool)
    mask[5:290, 3:150] = True  # long runs: multi-character counts, negative differences
    mask[100, 160] = True
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    runs = rle_counts(rle["counts"])
    flat = mask.ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    np.testing.assert_array_equal(runs, np.diff(np.r_[0, change, flat.size]))
    np.testing.assert_array_equal(rle_counts(rle["counts"].decode()), runs)
    np.testing.assert_array_equal(rle_counts(runs.tolist()), runs)
    np.testing.assert_array_equal(RleMask({"size": [300, 200], "counts": runs.tolist()}).transposed_window(
        slice(0, 300), slice(0, 200)), mask.T)


def test_corrupt_rle_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match="cover 13 pixels"):
        RleMask({"size": [3, 4], "counts": [5, 6, 2]})
    # Short run lists end in background, as pycocotools decodes them.
    short = {"size": [3, 4], "counts": [5, 6]}
    want = mask_utils.decode(mask_utils.frPyObjects(short, 3, 4)).astype(bool)
    np.testing.assert_array_equal(RleMask(short).transposed_window(slice(0, 3), slice(0, 4)), want.T)
    with pytest.raises(DatasetError, match="truncated"):
        rle_counts("1i")  # 'i' (0x39) carries the continuation bit


def test_window_scores_do_not_change_under_transposition() -> None:
    rng = np.random.default_rng(3)
    half_widths = boundary_half_widths(40, 60)
    masks = _random_masks(rng, (40, 60), 12)
    for gt, pred in zip(masks, masks[::-1]):
        straight = binary_window_scores(gt, pred, half_widths)
        transposed = np.ascontiguousarray(gt.T), np.ascontiguousarray(pred.T)
        assert binary_window_scores(*transposed, half_widths) == straight


@pytest.mark.parametrize("shape", [(40, 60), (61, 37)])
def test_windowed_expression_scores_equal_the_dense_path(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0])
    objects = [_random_masks(rng, shape, 14) for _ in range(2)]
    preds = _random_masks(rng, shape, 14)
    rng.shuffle(preds)
    frames = len(preds)
    gt = np.stack(objects[0]) | np.stack(objects[1])
    pred = np.stack(preds).astype(np.uint8) * 7
    pred[3] = 0  # a missing prediction frame reads as None
    rles = [[RleMask(_encode(obj[t])) for obj in objects if obj[t].any()] for t in range(frames)]
    pred_frames = [None if t == 3 else pred[t] for t in range(frames)]
    got = windowed_expression_scores(rles, pred_frames, shape)
    want = expression_scores(gt, pred)
    np.testing.assert_array_equal(got.j, want.j)
    np.testing.assert_array_equal(got.f, want.f)
    assert (got.intersection, got.union, got.pred_area) == (want.intersection, want.union, want.pred_area)


def test_windowed_expression_scores_check_sizes() -> None:
    rle = [RleMask(_encode(np.ones((4, 5), bool)))]
    with pytest.raises(ShapeMismatchError, match="prediction mask is 6x4"):
        windowed_expression_scores([rle], [np.zeros((4, 6), np.uint8)], (4, 5))
    with pytest.raises(ShapeMismatchError, match="GT mask is 5x4"):
        windowed_expression_scores([rle], [None], (5, 4))
    with pytest.raises(ShapeMismatchError, match="frame counts differ"):
        windowed_expression_scores([rle, rle], [None], (4, 5))


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_iter_masks_reads_in_order_with_read_ahead(tmp_path, threads: int) -> None:
    from PIL import Image

    from videoglamm.metrics.mask_io import iter_masks

    paths = [tmp_path / f"{t:05d}.png" for t in range(7)]
    for t, path in enumerate(paths):
        if t != 4:
            frame = np.zeros((3, 5), np.uint8)
            frame[t % 3, t % 5] = 255  # one pixel, a different one per frame
            Image.fromarray(frame, mode="L").save(path)
    missing: list[str] = []
    frames = list(iter_masks(paths, (3, 5), missing, threads=threads))
    assert frames[4] is None and missing == [str(paths[4])]
    boxes = [f.box() for t, f in enumerate(frames) if t != 4]
    assert boxes == [(t % 3, t % 3, t % 5, t % 5) for t in (0, 1, 2, 3, 5, 6)]
    Image.fromarray(np.zeros((3, 6), np.uint8), mode="L").save(paths[5])
    with pytest.raises(ShapeMismatchError, match="00005.png"):
        list(iter_masks(paths, (3, 5), threads=threads))


@pytest.mark.parametrize("mode", ["L", "P", "1", "I;16"])
def test_png_masks_give_the_array_boxes_and_windows(tmp_path, mode: str) -> None:
    from PIL import Image

    from videoglamm.metrics.mask_io import read_mask
    from videoglamm.metrics.windows import ArrayMask

    rng = np.random.default_rng(7)
    for k, mask in enumerate(_random_masks(rng, (23, 31), 8)):
        values = np.where(mask, rng.integers(1, 4, mask.shape), 0).astype(np.uint8)
        if mode == "1":
            image = Image.fromarray(mask)
        elif mode == "I;16":
            image = Image.fromarray(values.astype(np.uint16) * 300)
        else:
            image = Image.fromarray(values, mode="L")
            if mode == "P":
                image = image.convert("P")  # grayscale palette: index == value
        path = tmp_path / f"{k}.png"
        image.save(path)
        got, want = read_mask(path), ArrayMask(values)
        assert (got.height, got.width) == (23, 31)
        assert got.box() == want.box()
        for _ in range(4):
            y0, y1 = sorted(rng.integers(0, 24, 2))
            x0, x1 = sorted(rng.integers(0, 32, 2))
            window = got.transposed_window(slice(y0, y1), slice(x0, x1))
            np.testing.assert_array_equal(window, want.transposed_window(slice(y0, y1), slice(x0, x1)))
            np.testing.assert_array_equal(window, mask[y0:y1, x0:x1].T)


def test_png_mask_of_palette_fixture_frames_matches_the_label_map() -> None:
    from pathlib import Path

    from videoglamm.metrics.mask_io import PngMask, read_mask, read_mask_png
    from videoglamm.metrics.windows import ArrayMask

    for path in sorted((Path(__file__).parent / "data" / "rvos_parity" / "pred" / "judo").glob("*.png"))[:10]:
        got = read_mask(path)
        assert isinstance(got, PngMask) and got.image.mode == "P"
        want = ArrayMask(read_mask_png(path))
        assert got.box() == want.box()
        rows, cols = slice(0, got.height), slice(0, got.width)
        np.testing.assert_array_equal(got.transposed_window(rows, cols), want.transposed_window(rows, cols))
