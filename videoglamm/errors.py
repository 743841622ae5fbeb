"""Typed errors. Every error names what is wrong (path, shapes, field) and says what to do."""

from __future__ import annotations


class VideoGLaMMError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(VideoGLaMMError, ValueError):
    """A configuration contradicts itself or names something unknown."""


class InputError(VideoGLaMMError, ValueError):
    """User input (video, prompt, masks, batch) is malformed."""


class ShapeMismatchError(InputError):
    """Two tensors that must agree in shape do not."""


class TokenCountError(InputError):
    """Placeholder or `[SEG]` tokens do not match the visual features or masks given."""


class VideoReadError(VideoGLaMMError, OSError):
    """A video file is missing, unreadable or has no decodable frames."""


class CheckpointError(VideoGLaMMError, RuntimeError):
    """A checkpoint or model folder is missing files, has missing/unexpected keys or wrong shapes."""


class DatasetError(VideoGLaMMError, RuntimeError):
    """A dataset is malformed beyond the configured tolerance of bad samples."""


class TrainingError(VideoGLaMMError, RuntimeError):
    """Training cannot go on (too many non-finite losses, a checkpoint that does not match the run)."""
