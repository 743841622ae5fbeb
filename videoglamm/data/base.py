"""What every reader shares: the bad-sample policy (skip, warn, count, fail past a fraction).

Readers raise `BadSampleError` for one unusable sample (missing or unreadable file, mask size
mismatch, target absent from the sampled frames, malformed record). `ReaderBase` catches exactly
that error, warns with the file named, counts it, and raises `DatasetError` once the bad fraction
exceeds `max_bad_fraction`. Any other exception is a bug and propagates.
"""

from __future__ import annotations

import abc
import logging
import random
import warnings
from typing import Any

from torch.utils.data import Dataset

from videoglamm.data.schema import Sample
from videoglamm.errors import DatasetError

logger = logging.getLogger(__name__)


class BadSampleError(DatasetError):
    """One sample cannot be used; the message names the file and what is wrong with it."""


class BadSampleWarning(UserWarning):
    """Emitted once per skipped sample."""


class BadSampleLog:
    """Counts bad samples of one dataset and enforces the tolerated fraction.

    Args:
        dataset_name: used in every message.
        max_bad_fraction: largest tolerated share of bad samples, in [0, 1].
    """

    def __init__(self, dataset_name: str, max_bad_fraction: float) -> None:
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise ValueError(f"max_bad_fraction must lie in [0, 1], got {max_bad_fraction}")
        self.dataset_name = dataset_name
        self.max_bad_fraction = max_bad_fraction
        self.bad: dict[str, str] = {}

    @property
    def count(self) -> int:
        return len(self.bad)

    def record(self, key: str, error: BadSampleError, total: int) -> None:
        """Warn about `key`, count it once, and check the fraction against `total` samples.

        Raises:
            DatasetError: when more than `max_bad_fraction` of `total` samples are now bad.
        """
        if key not in self.bad:
            self.bad[key] = str(error)
            warnings.warn(f"{self.dataset_name}: skipping {key}: {error}", BadSampleWarning, stacklevel=3)
            logger.warning("%s: %d bad sample(s) skipped so far out of %d",
                           self.dataset_name, self.count, total)
        self.check(total)

    def check(self, total: int) -> None:
        if total and self.count > self.max_bad_fraction * total:
            first = "; ".join(f"{k}: {v}" for k, v in list(self.bad.items())[:3])
            raise DatasetError(
                f"{self.dataset_name}: {self.count} of {total} samples are bad, more than the tolerated "
                f"{self.max_bad_fraction:.1%} (max_bad_fraction). Fix or re-download the data, or raise "
                f"max_bad_fraction if these losses are acceptable. First problems: {first}"
            )


class ReaderBase(Dataset, abc.ABC):
    """Map-style dataset over a list of records; subclasses implement `_load(record, rng)`.

    Subclasses build `self._records` and report records that fail to parse with
    `self._index_bad(key, error)`, then call `self._finish_index()`.

    Args:
        dataset_name: name used in `Sample.source` and in messages.
        max_bad_fraction: tolerated share of bad samples before `DatasetError`.
        seed: seeds the template choice together with the epoch and the index.
    """

    def __init__(self, dataset_name: str, *, max_bad_fraction: float = 0.05, seed: int = 0) -> None:
        self.dataset_name = dataset_name
        self.seed = seed
        self.epoch = 0
        self.bad_log = BadSampleLog(dataset_name, max_bad_fraction)
        self._records: list[Any] = []
        self._bad_indices: set[int] = set()
        self._num_bad_at_index = 0

    def _index_bad(self, key: str, error: BadSampleError) -> None:
        self._num_bad_at_index += 1
        self.bad_log.record(key, error, total=0)  # the total is unknown until indexing ends

    def _finish_index(self) -> None:
        """Check index-time failures against the final total; an empty dataset is an error."""
        if not self._records:
            raise DatasetError(f"{self.dataset_name}: no usable samples found; check the paths given")
        self.bad_log.check(self._total())

    def _total(self) -> int:
        return len(self._records) + self._num_bad_at_index

    def _record_key(self, record: Any) -> str:
        return str(record)

    @abc.abstractmethod
    def _load(self, record: Any, rng: random.Random) -> Sample:
        """Build the sample of one index record (each reader defines it); raise to mark it bad."""

    def set_epoch(self, epoch: int) -> None:
        """Change the template draws for a new epoch (data loaders call this like a sampler's)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._records)

    @property
    def records(self) -> list[Any]:
        """The parsed records in index order (a copy): evaluation lists items without loading them."""
        return list(self._records)

    def load(self, index: int) -> Sample:
        """Load record `index` strictly.

        Raises:
            BadSampleError: when this sample is unusable.
        """
        return self._load(self._records[index], self._rng(index))

    def _rng(self, index: int) -> random.Random:
        return random.Random(f"{self.seed}:{self.epoch}:{index}")

    def text(self, index: int) -> tuple[str, str]:
        """The (question, answer) of record `index` without its frames or masks, with the same template
        draws as `load` (for text-only stages such as `train/llm_synthetic.py`).

        Raises:
            TypeError: this reader has no text-only view (no `text_pair` method).
            BadSampleError: the record's text is unusable.
        """
        text_pair = getattr(self, "text_pair", None)
        if text_pair is None:
            raise TypeError(f"{type(self).__name__} ({self.dataset_name}) has no text-only view (text_pair)")
        return text_pair(self._records[index], self._rng(index))

    def __getitem__(self, index: int) -> Sample:
        """Load record `index`, or the next usable one after it if it is bad (warned and counted).

        Raises:
            DatasetError: when the bad fraction exceeds `max_bad_fraction`.
        """
        n = len(self._records)
        if not -n <= index < n:
            raise IndexError(f"{self.dataset_name}: index {index} out of range for {n} samples")
        index %= n
        for step in range(n):
            i = (index + step) % n
            if i in self._bad_indices:
                continue
            try:
                return self.load(i)
            except BadSampleError as err:
                self._bad_indices.add(i)
                self.bad_log.record(self._record_key(self._records[i]), err, self._total())
        raise DatasetError(f"{self.dataset_name}: none of the {n} samples could be loaded")

    def scan(self) -> int:
        """Load every sample once so bad ones are found (and counted) up front.

        Returns:
            The number of usable samples.

        Raises:
            DatasetError: when the bad fraction exceeds `max_bad_fraction`.
        """
        for i in range(len(self._records)):
            try:
                self.load(i)
            except BadSampleError as err:
                self._bad_indices.add(i)
                self.bad_log.record(self._record_key(self._records[i]), err, self._total())
        usable = len(self) - len(self._bad_indices)
        logger.info("%s: %d usable of %d samples", self.dataset_name, usable, self._total())
        return usable
