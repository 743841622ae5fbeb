"""Checking the plain values of a config file (JSON/YAML) against a dataclass's field types.

YAML and JSON give bools, numbers, strings, lists and mappings; a value of the wrong kind ("no" for a
bool, 2.5 for an integer) is refused with the field's name instead of silently changing behaviour.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import types
import typing
from typing import Any, Union

from videoglamm.errors import ConfigError

_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null",
          list: "a list", tuple: "a list", dict: "a mapping"}


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any or isinstance(hint, typing.TypeVar):
        return True
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is type(None):
        return value is None
    if origin in (tuple, list, collections.abc.Sequence) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return not args or all(_matches(v, args[0] if len(args) == 1 else Any) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True  # nested dataclasses and other types are checked where they are built


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    return _NAMES.get(origin or hint, getattr(hint, "__name__", str(hint)))


def check_field_types(cls: type, values: dict[str, Any], where: str) -> None:
    """Raise ConfigError naming `where.field` when a value does not fit the dataclass field's type.

    Raises:
        ConfigError: e.g. "train.max_steps must be an integer, got 2.5 (float)".
    """
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in values and f.name in hints and not _matches(values[f.name], hints[f.name]):
            value = values[f.name]
            raise ConfigError(f"{where}.{f.name} must be {_describe(hints[f.name])}, got {value!r} "
                              f"({type(value).__name__})")
