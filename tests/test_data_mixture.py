"""Mixture sampler: determinism, weight checks, resume equivalence, disjoint rank shards."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from videoglamm.data import MixtureDataset, MixtureSampler
from videoglamm.errors import ConfigError

SIZES = [50, 120, 30]
WEIGHTS = [1.0, 2.0, 1.0]


def take(sampler: MixtureSampler, n: int) -> list[int]:
    out: list[int] = []
    while len(out) < n:  # crosses epoch boundaries like a training loop would
        out.extend(itertools.islice(iter(sampler), n - len(out)))
    return out


def test_same_seed_same_stream_other_seed_differs():
    a = take(MixtureSampler(SIZES, WEIGHTS, seed=3), 300)
    b = take(MixtureSampler(SIZES, WEIGHTS, seed=3), 300)
    c = take(MixtureSampler(SIZES, WEIGHTS, seed=4), 300)
    assert a == b and a != c


def test_weights_set_each_dataset_share():
    sampler = MixtureSampler(SIZES, WEIGHTS, samples_per_epoch=400)
    plan = sampler.global_plan(0)
    counts = np.bincount(np.searchsorted(sampler.offsets, plan, side="right") - 1, minlength=3)
    assert counts.tolist() == [100, 200, 100]
    # The 30-sample dataset is cycled: every sample appears, none more than ceil(100 / 30) times.
    third = plan[plan >= 170] - 170
    assert set(third.tolist()) == set(range(30)) and np.bincount(third).max() == 4


def test_weights_length_mismatch_names_both_lengths():
    with pytest.raises(ConfigError, match=r"got 2 mixture weights for 3 datasets"):
        MixtureSampler(SIZES, [1.0, 2.0])
    with pytest.raises(ConfigError, match="not all zero"):
        MixtureSampler(SIZES, [0, 0, 0])
    with pytest.raises(ConfigError, match="empty"):
        MixtureSampler([10, 0], [1, 1])


@pytest.mark.parametrize("consumed", [0, 7, 199, 200, 333])
def test_resume_equals_uninterrupted(consumed):
    uninterrupted = take(MixtureSampler(SIZES, WEIGHTS, seed=9), 500)
    first = MixtureSampler(SIZES, WEIGHTS, seed=9)
    head = take(first, consumed)
    state = first.state_dict()
    resumed = MixtureSampler(SIZES, WEIGHTS, seed=9)
    resumed.load_state_dict(state)
    assert head + take(resumed, 500 - consumed) == uninterrupted


def test_resume_refuses_a_different_mixture():
    state = MixtureSampler(SIZES, WEIGHTS, seed=9).state_dict()
    with pytest.raises(ConfigError, match="weights"):
        MixtureSampler(SIZES, [1.0, 1.0, 1.0], seed=9).load_state_dict(state)


def test_rank_shards_are_disjoint_and_cover_the_epoch():
    world = 4
    kwargs = {"seed": 2, "samples_per_epoch": 102}  # shares 26/51/25 fit in their datasets
    shards = [list(MixtureSampler(SIZES, WEIGHTS, rank=r, world_size=world, **kwargs)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == 102 // world
    flat = [i for s in shards for i in s]
    plan = MixtureSampler(SIZES, WEIGHTS, **kwargs).global_plan(0)
    # Every share fits in its dataset, so ranks get disjoint positions and disjoint samples.
    assert sorted(flat) == sorted(plan[: len(flat)].tolist())
    for a, b in itertools.combinations(shards, 2):
        assert not set(a) & set(b)
    again = list(MixtureSampler(SIZES, WEIGHTS, rank=1, world_size=world, **kwargs))
    assert again == shards[1]


def test_mixture_dataset_maps_global_indices():
    mix = MixtureDataset([list("abc"), list("de")])
    assert len(mix) == 5 and [mix[i] for i in range(5)] == list("abcde") and mix.locate(3) == (1, 0)
    sampler = MixtureSampler(mix.sizes, [1, 1])
    assert sorted(mix[i] for i in sampler) == list("abcde")
