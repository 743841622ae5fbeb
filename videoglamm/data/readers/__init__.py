"""One reader per real dataset format; each is a map-style dataset returning `Sample`s."""

from videoglamm.data.readers.gcg import BurstYTVISGCGReader, PhraseGCGReader
from videoglamm.data.readers.gcg_anet import ANetEntitiesGCGReader
from videoglamm.data.readers.grounding import STGroundingReader
from videoglamm.data.readers.image_seg import RefCOCOReader
from videoglamm.data.readers.masks import ObjectPNGMasks, PaletteMasks, RLEMasks
from videoglamm.data.readers.refvos import MeViSReader, RefVOSReader
from videoglamm.data.readers.videoqa import VideoQAReader

__all__ = [
    "ANetEntitiesGCGReader",
    "BurstYTVISGCGReader",
    "MeViSReader",
    "ObjectPNGMasks",
    "PaletteMasks",
    "PhraseGCGReader",
    "RLEMasks",
    "RefCOCOReader",
    "RefVOSReader",
    "STGroundingReader",
    "VideoQAReader",
]
