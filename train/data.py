"""Datasets, mixture and batches of a recipe.

Batches are drawn by hand from the `MixtureSampler` (no DataLoader workers), so the sampler's
`state_dict()` after a batch is exactly the data position to resume from.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

from videoglamm.data.collate import SampleCollator
from videoglamm.data.mixture import MixtureDataset, MixtureSampler
from videoglamm.errors import ConfigError

from train.config import DataSection, DatasetEntry, SyntheticEntry

logger = logging.getLogger(__name__)


def ensure_synthetic(entry: SyntheticEntry) -> Path:
    """Write the synthetic set unless it is there (the writer is atomic: a present folder is whole)."""
    from videoglamm.data.synthetic_io import write_dataset

    root = Path(entry.root)
    if not (root / "meta_expressions.json").is_file():
        logger.info("writing %d synthetic videos (seed %d) to %s", entry.videos, entry.seed, root)
        write_dataset(root, entry.videos, entry.seed, num_frames=entry.frames, size=tuple(entry.size),
                      overwrite=root.exists(), progress=False)
    return root


def build_reader(entry: DatasetEntry, seed: int, max_bad_fraction: float) -> Any:
    """`Reader.<constructor>(**args)` for one dataset entry.

    Raises:
        ConfigError: the reader or constructor is not one of `videoglamm.data.readers`.
    """
    from videoglamm.data import readers
    from videoglamm.data.base import ReaderBase

    cls = getattr(readers, entry.reader, None)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, ReaderBase)):
        raise ConfigError(f"data.datasets '{entry.name}': unknown reader {entry.reader!r}; "
                          f"available: {[n for n in readers.__all__ if n.endswith('Reader')]}")
    make = cls if entry.constructor is None else getattr(cls, entry.constructor, None)
    if make is None:
        raise ConfigError(f"data.datasets '{entry.name}': {entry.reader} has no constructor "
                          f"{entry.constructor!r}")
    args = {"dataset_name": entry.name, "seed": seed, "max_bad_fraction": max_bad_fraction, **entry.args}
    return make(**args)


class Batches:
    """Endless micro-batches of collated samples for one rank.

    Args:
        data: the recipe's data section.
        collator: `SampleCollator` of the model's processor.
        micro_batch_size: samples per micro-batch.
        rank, world_size: this process's shard of the mixture.
    """

    def __init__(self, data: DataSection, collator: SampleCollator, micro_batch_size: int, rank: int = 0,
                 world_size: int = 1) -> None:
        for entry in data.synthetic:
            ensure_synthetic(entry)
        readers = [build_reader(e, data.seed, data.max_bad_fraction) for e in data.datasets]
        self.dataset = MixtureDataset(readers)
        self.sampler = MixtureSampler(self.dataset.sizes, [e.weight for e in data.datasets],
                                      samples_per_epoch=data.samples_per_epoch, seed=data.seed, rank=rank,
                                      world_size=world_size)
        self.collator = collator
        self.micro_batch_size = micro_batch_size
        self._iter: Iterator[int] | None = None

    def _next_index(self) -> int:
        while True:
            if self._iter is None:
                self.dataset.set_epoch(self.sampler.epoch)  # reader template draws follow the epoch
                self._iter = iter(self.sampler)
            try:
                return next(self._iter)
            except StopIteration:
                self._iter = None

    def next_batch(self) -> dict[str, Any]:
        """The next micro-batch (readers skip, warn about and count bad samples)."""
        samples = [self.dataset[self._next_index()] for _ in range(self.micro_batch_size)]
        return self.collator(samples)

    def bad_samples(self) -> int:
        """Bad samples skipped so far by all readers of this rank."""
        return sum(reader.bad_log.count for reader in self.dataset.datasets)

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
        self._iter = None
