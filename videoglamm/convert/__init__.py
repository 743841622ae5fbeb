"""Pure state-dict converters from the official checkpoints, with strict key checking (`_strict`).

`convert_official(kind, state_dict, **parts)` is the entry point; `convert_checkpoint` (in `files`) reads
files, converts shard by shard and writes a `from_pretrained` folder.
"""

from videoglamm.convert.official import (
    KINDS,
    convert_official,
    convert_official_with_report,
    to_official,
)

__all__ = ["KINDS", "convert_official", "convert_official_with_report", "to_official"]
