"""Data: the `Sample` schema, readers for the real dataset formats, the mixture sampler and synthetic data.

Importing this package loads torch, numpy and PIL only; pycocotools and tqdm load when first needed.
"""

from videoglamm.data.base import BadSampleError, BadSampleLog, BadSampleWarning, ReaderBase
from videoglamm.data.mixture import MixtureDataset, MixtureSampler
from videoglamm.data.readers import (
    ANetEntitiesGCGReader,
    BurstYTVISGCGReader,
    MeViSReader,
    PhraseGCGReader,
    RefCOCOReader,
    RefVOSReader,
    STGroundingReader,
    VideoQAReader,
)
from videoglamm.data.schema import TASKS, Sample
from videoglamm.data.templates import SEG_TOKEN

__all__ = [
    "ANetEntitiesGCGReader",
    "BadSampleError",
    "BadSampleLog",
    "BadSampleWarning",
    "BurstYTVISGCGReader",
    "MeViSReader",
    "MixtureDataset",
    "MixtureSampler",
    "PhraseGCGReader",
    "ReaderBase",
    "RefCOCOReader",
    "RefVOSReader",
    "SEG_TOKEN",
    "STGroundingReader",
    "Sample",
    "TASKS",
    "VideoQAReader",
]
