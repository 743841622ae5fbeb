"""The fast boundary paths against their straightforward definitions (random masks and points)."""

from __future__ import annotations

import numpy as np
import pytest

from videoglamm.metrics.boundary import DiskNeighbourhood, boundary_hits, disk_half_widths, seg2bmap


def _seg2bmap_reference(mask: np.ndarray) -> np.ndarray:
    seg = mask.astype(bool)
    out = np.zeros_like(seg)
    out[..., :, :-1] |= seg[..., :, :-1] != seg[..., :, 1:]
    out[..., :-1, :] |= seg[..., :-1, :] != seg[..., 1:, :]
    out[..., :-1, :-1] |= seg[..., :-1, :-1] != seg[..., 1:, 1:]
    return out


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (2, 2), (13, 17), (3, 5, 9), (0, 4), (4, 0)])
def test_seg2bmap_matches_definition(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    for density in (0.05, 0.5, 0.95):
        mask = rng.random(shape) < density
        np.testing.assert_array_equal(seg2bmap(mask), _seg2bmap_reference(mask))
        np.testing.assert_array_equal(seg2bmap(mask.astype(np.uint8) * 7), _seg2bmap_reference(mask))


@pytest.mark.parametrize("radius", [1.0, 3.0, 8.0, 12.0, 40.0])
def test_boundary_hits_matches_disk_neighbourhood(radius: float) -> None:
    rng = np.random.default_rng(int(radius))
    half = disk_half_widths(radius)
    for _ in range(20):
        size = int(rng.integers(1, 120))
        g = np.unique(rng.integers(0, 100, size) * 1000 + rng.integers(0, 150, size))
        p = np.unique(rng.integers(0, 100, size) * 1000 + rng.integers(0, 150, size) + int(rng.integers(0, 40)))
        gy, gx = np.divmod(rng.permutation(g), 1000)
        py, px = np.divmod(p, 1000)
        want = (
            int(DiskNeighbourhood(gy, gx, half).contains(py, px).sum()),
            int(DiskNeighbourhood(py, px, half).contains(gy, gx).sum()),
        )
        assert boundary_hits(gy, gx, py, px, half) == want


def test_scalar_f_equals_f_from_counts_bit_for_bit() -> None:
    from videoglamm.metrics.rvos import _f_scalar, f_from_counts

    rng = np.random.default_rng(0)
    n_pred, n_gt = rng.integers(0, 3000, 5000), rng.integers(0, 3000, 5000)
    n_pred[:300], n_gt[300:600] = 0, 0
    pred_hits = (rng.random(5000) * (n_pred + 1)).astype(np.int64)
    gt_hits = (rng.random(5000) * (n_gt + 1)).astype(np.int64)
    want = f_from_counts(n_pred, n_gt, pred_hits, gt_hits)
    got = [_f_scalar(int(a), int(b), int(c), int(d)) for a, b, c, d in zip(n_pred, n_gt, pred_hits, gt_hits)]
    assert np.asarray(got).tobytes() == want.tobytes()
