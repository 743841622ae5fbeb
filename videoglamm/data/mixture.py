"""Weighted mixture of datasets: a concatenated dataset plus a deterministic, resumable, shardable sampler.

Each epoch the sampler builds one global plan of `samples_per_epoch` indices: dataset d contributes
a share proportional to its weight, drawn without replacement from a fresh permutation of d (cycled
only when its share exceeds its size), and the plan is shuffled. Rank r of `world_size` takes
`plan[r::world_size]`, so ranks see disjoint positions of one stream and, while every share fits in
its dataset, disjoint samples. The plan depends only on (seed, epoch, sizes, weights), so the
position within the epoch is the whole resumable state.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import numpy as np
from torch.utils.data import Dataset, Sampler

from videoglamm.errors import ConfigError


class MixtureDataset(Dataset):
    """Concatenation of datasets addressed by one global index (what `MixtureSampler` yields).

    Args:
        datasets: the member datasets (map-style).
    """

    def __init__(self, datasets: Sequence[Dataset]) -> None:
        if not datasets:
            raise ConfigError("MixtureDataset needs at least one dataset")
        self.datasets = list(datasets)
        self.sizes = [len(d) for d in self.datasets]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """Return (dataset position, index within it) of a global index."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a mixture of {len(self)} samples")
        d = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return d, index - int(self.offsets[d])

    def __getitem__(self, index: int) -> Any:
        d, i = self.locate(index)
        return self.datasets[d][i]

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to members that vary per epoch (e.g. template draws of readers)."""
        for dataset in self.datasets:
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)


def _normalised(weights: Sequence[float], sizes: Sequence[int]) -> np.ndarray:
    if len(weights) != len(sizes):
        raise ConfigError(
            f"got {len(weights)} mixture weights for {len(sizes)} datasets; give exactly one weight per "
            "dataset, in the same order (the official recipe's lists disagreed in length)"
        )
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"mixture weights must be finite, >= 0 and not all zero, got {list(weights)}")
    empty = [d for d, (wd, n) in enumerate(zip(w, sizes)) if wd > 0 and n == 0]
    if empty:
        raise ConfigError(f"datasets at positions {empty} are empty but have a non-zero weight")
    return w / w.sum()


def _apportion(total: int, probs: np.ndarray) -> np.ndarray:
    """Integer shares summing to `total`, largest remainder first (ties to the earlier dataset)."""
    exact = probs * total
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


class MixtureSampler(Sampler[int]):
    """Deterministic weighted sampler over a `MixtureDataset`, resumable and sharded by rank.

    Args:
        sizes: length of each member dataset (`MixtureDataset.sizes`).
        weights: relative sampling weight of each dataset, same length as `sizes`.
        samples_per_epoch: length of one global epoch plan (default: sum of sizes).
        seed: the stream is a pure function of the seed (and sizes, weights, world_size).
        rank, world_size: this process's shard; every rank gets `samples_per_epoch // world_size`.

    Raises:
        ConfigError: weights and datasets differ in number, or weights/rank are invalid.
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float], *,
                 samples_per_epoch: int | None = None, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        self.sizes = [int(n) for n in sizes]
        self.weights = [float(w) for w in weights]
        self.probs = _normalised(self.weights, self.sizes)
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is not in [0, world_size={world_size})")
        self.samples_per_epoch = sum(self.sizes) if samples_per_epoch is None else int(samples_per_epoch)
        if self.samples_per_epoch < world_size:
            raise ConfigError(f"samples_per_epoch {self.samples_per_epoch} < world_size {world_size}: "
                              "some rank would get nothing")
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.epoch, self.position = 0, 0
        self._plan_epoch, self._plan = -1, np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return self.samples_per_epoch // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its beginning."""
        self.epoch, self.position = int(epoch), 0

    def global_plan(self, epoch: int) -> np.ndarray:
        """All ranks' indices of `epoch`, before sharding (global mixture indices)."""
        counts = _apportion(self.samples_per_epoch, self.probs)
        parts = []
        for d, (count, size) in enumerate(zip(counts, self.sizes)):
            if count == 0:
                continue
            rng = np.random.default_rng([self.seed, epoch, d])
            cycles = math.ceil(count / size)
            local = np.concatenate([rng.permutation(size) for _ in range(cycles)])[:count]
            parts.append(local + self.offsets[d])
        plan = np.concatenate(parts)
        return np.random.default_rng([self.seed, epoch, len(self.sizes)]).permutation(plan)

    def _rank_plan(self) -> np.ndarray:
        if self._plan_epoch != self.epoch:
            usable = len(self) * self.world_size  # equal lengths keep DDP ranks in lock-step
            self._plan = self.global_plan(self.epoch)[:usable][self.rank::self.world_size]
            self._plan_epoch = self.epoch
        return self._plan

    def __iter__(self) -> Iterator[int]:
        """Yield the rest of the current epoch, then move to the next epoch."""
        plan = self._rank_plan()
        while self.position < len(plan):
            # Count before yielding so state_dict() right after receiving item k says k were consumed.
            self.position += 1
            yield int(plan[self.position - 1])
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        """Resumable state. With a prefetching DataLoader, replace `position` by the count consumed."""
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "sizes": list(self.sizes),
                "weights": list(self.weights), "samples_per_epoch": self.samples_per_epoch,
                "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state`; the mixture definition must be the one it was saved with.

        Raises:
            ConfigError: seed, sizes, weights, epoch length or world size differ from the saved ones.
        """
        for key in ("seed", "sizes", "weights", "samples_per_epoch", "world_size"):
            if state[key] != getattr(self, key):
                raise ConfigError(f"cannot resume the mixture sampler: saved {key}={state[key]!r}, "
                                  f"current {getattr(self, key)!r}; resume with the same data mixture")
        if not 0 <= state["position"] <= len(self):
            raise ConfigError(f"saved position {state['position']} is outside an epoch of {len(self)}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
