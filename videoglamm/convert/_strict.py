"""Strict key checking shared by every checkpoint converter.

A converter renames source keys through exact templates (`rename_by_templates`), may combine tensors
(fused q/k/v), and then hands the result to `check_conversion`, which compares it with the key->shape
table of the target module (`expected_shapes`, works on meta tensors) and with a named drop allow-list
(regex -> reason). Every missing, unexpected or wrongly shaped key is collected and raised in one
`CheckpointError`; nothing is silently skipped. On success a `ConversionReport` says what was mapped,
renamed and dropped (and why), for a CLI to print.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from videoglamm.errors import CheckpointError

_INDEX = "{}"


@dataclass
class ConversionReport:
    """What a conversion did.

    Attributes:
        kind: checkpoint kind, e.g. "internvideo2" or "clip-hf".
        sources: target key -> the source key(s) it was built from (several for fused tensors).
        dropped: source key -> the reason it was dropped (from the allow-list).
        container: where the tensors were found in the loaded object ("" = flat, else e.g. "model").
        source_prefix, target_prefix: namespace prefixes that are not counted as renaming.
        not_covered: for a partial conversion, model part prefix -> where its weights must come from.
        notes: other facts a user should see (e.g. rows removed by a vocabulary resize).
        parts: for a conversion made of several parts (a whole model), one report per part.
    """

    kind: str
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    container: str = ""
    source_prefix: str = ""
    target_prefix: str = ""
    not_covered: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    parts: dict[str, "ConversionReport"] = field(default_factory=dict)

    @property
    def num_mapped(self) -> int:
        """Target tensors produced."""
        return len(self.sources)

    @property
    def num_renamed(self) -> int:
        """Targets named differently from their source beyond the namespace prefixes (fused ones count)."""
        if self.parts:  # each part has its own namespace prefixes
            return sum(part.num_renamed for part in self.parts.values())
        def strip(name: str, prefix: str) -> str:
            return name[len(prefix):] if name.startswith(prefix) else name

        return sum(
            1 for tgt, src in self.sources.items()
            if len(src) > 1 or strip(src[0], self.source_prefix) != strip(tgt, self.target_prefix)
        )

    @property
    def num_fused(self) -> int:
        """Target tensors built from more than one source tensor."""
        return sum(1 for src in self.sources.values() if len(src) > 1)

    def dropped_by_reason(self) -> dict[str, int]:
        """Reason -> number of dropped source tensors."""
        return dict(Counter(self.dropped.values()))

    def format(self) -> str:
        """A short human-readable summary, one line per drop reason."""
        where = f" (from '{self.container}')" if self.container else ""
        lines = [
            f"{self.kind}{where}: {self.num_mapped} tensors mapped ({self.num_renamed} renamed, "
            f"{self.num_fused} fused), {len(self.dropped)} dropped"
        ]
        lines += [f"  dropped {n:4d}: {reason}" for reason, n in self.dropped_by_reason().items()]
        lines += ["  " + line for part in self.parts.values() for line in part.format().splitlines()]
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  not covered: {part}* ({source})" for part, source in self.not_covered.items()]
        return "\n".join(lines)


def expected_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    """Key -> shape of everything `module.load_state_dict` expects (meta tensors are fine)."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def unwrap_container(
    obj: Mapping[str, Any], wrappers: Sequence[str] = ("model", "module")
) -> tuple[Mapping[str, Any], str]:
    """Return the tensor dict of a loaded checkpoint and the wrapper key it sat under ("" if flat).

    Raises:
        CheckpointError: `obj` is not a mapping.
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"expected a state dict (a mapping of names to tensors), got {type(obj).__name__}"
        )
    for name in wrappers:
        inner = obj.get(name)
        if isinstance(inner, Mapping):
            return inner, name
    return obj, ""


def _template_regex(template: str) -> re.Pattern[str]:
    parts = template.split(_INDEX)
    return re.compile(r"(\d+)".join(re.escape(p) for p in parts))


def rename_by_templates(
    state_dict: Mapping[str, Any], templates: Mapping[str, str], prefix: str = ""
) -> tuple[dict[str, Any], dict[str, tuple[str, ...]], list[str]]:
    """Rename keys through exact templates; `{}` stands for a layer index (digits) in both names.

    Args:
        state_dict: source key -> value.
        templates: source template -> target template,
            e.g. ``"blocks.{}.ls1.gamma": "blocks.{}.attn_layer_scale"``.
            The source template is matched against the key with `prefix` removed, over the whole key.
        prefix: literal prefix every mapped source key must carry.

    Returns:
        (renamed target key -> value, target key -> (source key,), source keys no template matched).

    Raises:
        CheckpointError: two source keys map to the same target key.
    """
    compiled = [(_template_regex(src), tgt) for src, tgt in templates.items()]
    out: dict[str, Any] = {}
    sources: dict[str, tuple[str, ...]] = {}
    leftover: list[str] = []
    for key, value in state_dict.items():
        target = None
        if key.startswith(prefix):
            rest = key[len(prefix):]
            for regex, tgt in compiled:
                m = regex.fullmatch(rest)
                if m is not None:
                    target = tgt.format(*m.groups())
                    break
        if target is None:
            leftover.append(key)
            continue
        if target in out:
            raise CheckpointError(f"source keys {sources[target][0]!r} and {key!r} both map to {target!r}")
        out[target] = value
        sources[target] = (key,)
    return out, sources, leftover


def _fmt_shape(shape: Iterable[int]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def check_conversion(
    kind: str,
    converted: Mapping[str, Any],
    sources: Mapping[str, tuple[str, ...]],
    leftover: Iterable[str],
    expected: Mapping[str, tuple[int, ...]],
    drop: Mapping[str, str],
    source_names: Callable[[str], str] | None = None,
    container: str = "",
    source_prefix: str = "",
    target_prefix: str = "",
) -> ConversionReport:
    """Check a converted state dict against the target's key->shape table; raise on any mismatch.

    Args:
        kind: checkpoint kind, used in messages.
        converted: target key -> tensor, as produced by the converter.
        sources: target key -> source key(s) it came from.
        leftover: source keys the converter did not map. Each must fully match a `drop` pattern.
        expected: target key -> shape (see `expected_shapes`).
        drop: named allow-list, regex (matched over the whole source key) -> reason for dropping.
        source_names: optional target key -> official source name, to say which source key is missing.
        container: where the tensors sat in the loaded object (for the report).
        source_prefix, target_prefix: namespace prefixes not counted as renaming in the report.

    Returns:
        The `ConversionReport`.

    Raises:
        CheckpointError: listing every missing key, unexpected key (unmapped and not allowed to drop, or
            mapped to a name the target does not have), non-tensor value and wrong shape (with both shapes).
    """
    rules = [(re.compile(pattern), reason) for pattern, reason in drop.items()]
    dropped: dict[str, str] = {}
    unexpected: list[str] = []
    for key in leftover:
        reason = next((r for rx, r in rules if rx.fullmatch(key)), None)
        if reason is None:
            unexpected.append(key)
        else:
            dropped[key] = reason

    unknown_targets = [f"{'+'.join(sources[k])} -> {k}" for k in converted if k not in expected]
    missing = [k for k in expected if k not in converted]
    bad_values: list[str] = []
    bad_shapes: list[str] = []
    for key, value in converted.items():
        if key not in expected:
            continue
        src = "+".join(sources[key])
        if not isinstance(value, torch.Tensor):
            bad_values.append(f"{src}: {type(value).__name__} is not a tensor")
        elif tuple(value.shape) != tuple(expected[key]):
            bad_shapes.append(
                f"{src} -> {key}: checkpoint has {_fmt_shape(value.shape)}, "
                f"model expects {_fmt_shape(expected[key])}"
            )

    problems: list[str] = []
    if missing:
        named = [f"{k} (from {source_names(k)})" if source_names else k for k in missing]
        problems.append(f"{len(missing)} missing key(s):\n    " + "\n    ".join(named))
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected key(s) (neither mapped nor on the drop allow-list):\n    "
            + "\n    ".join(unexpected)
        )
    if unknown_targets:
        problems.append(
            f"{len(unknown_targets)} key(s) mapped to names the model does not have:\n    "
            + "\n    ".join(unknown_targets)
        )
    if bad_values:
        problems.append(f"{len(bad_values)} non-tensor value(s):\n    " + "\n    ".join(bad_values))
    if bad_shapes:
        problems.append(f"{len(bad_shapes)} wrong shape(s):\n    " + "\n    ".join(bad_shapes))
    if problems:
        raise CheckpointError(
            f"{kind} checkpoint does not match the model (is it the right file and config?):\n  "
            + "\n  ".join(problems)
        )
    return ConversionReport(
        kind=kind, sources=dict(sources), dropped=dropped, container=container,
        source_prefix=source_prefix, target_prefix=target_prefix,
    )


def map_names(
    state_dict: Mapping[str, Any], name_map: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, tuple[str, ...]], list[str]]:
    """Rename through an exact source -> target table (built from the target's own key list).

    Returns:
        (target key -> value, target key -> (source key,), source keys not in the table).
    """
    out: dict[str, Any] = {}
    sources: dict[str, tuple[str, ...]] = {}
    leftover: list[str] = []
    for key, value in state_dict.items():
        target = name_map.get(key)
        if target is None:
            leftover.append(key)
        else:
            out[target] = value
            sources[target] = (key,)
    return out, sources, leftover


class IncrementalCheck:
    """`check_conversion` for a state dict that arrives in pieces (the shards of a large checkpoint).

    Each `add` fails at once on unexpected keys, unknown targets, wrong shapes and on keys seen in an earlier
    piece; only shapes are remembered (as meta tensors), never the tensors. `finish` then checks that
    nothing is missing and returns the report of the whole conversion.

    Args: as `check_conversion` (without the per-piece arguments).
    """

    def __init__(
        self,
        kind: str,
        expected: Mapping[str, tuple[int, ...]],
        drop: Mapping[str, str],
        source_names: Callable[[str], str] | None = None,
        container: str = "",
        source_prefix: str = "",
        target_prefix: str = "",
    ) -> None:
        self.kind = kind
        self.expected = dict(expected)
        self.drop = dict(drop)
        self.source_names = source_names
        self.container = container
        self.source_prefix = source_prefix
        self.target_prefix = target_prefix
        self._shapes: dict[str, torch.Tensor] = {}
        self._sources: dict[str, tuple[str, ...]] = {}
        self._dropped: dict[str, str] = {}
        self._seen_sources: set[str] = set()

    def add(
        self, converted: Mapping[str, Any], sources: Mapping[str, tuple[str, ...]], leftover: Iterable[str],
        where: str = "",
    ) -> None:
        """Check one converted piece.

        Args:
            converted, sources, leftover: as for `check_conversion`, for this piece only.
            where: the piece's name (a shard file), for messages.

        Raises:
            CheckpointError: as `check_conversion` (except missing keys), or a key repeated across pieces.
        """
        leftover = list(leftover)
        in_piece = [s for srcs in sources.values() for s in srcs] + leftover
        repeated = sorted({s for s in in_piece if s in self._seen_sources})
        repeated += sorted(f"{'+'.join(sources[k])} -> {k}" for k in converted if k in self._shapes)
        if repeated:
            raise CheckpointError(
                f"{self.kind}{f' ({where})' if where else ''}: key(s) already read from an earlier "
                "shard:\n    "
                + "\n    ".join(repeated)
            )
        sub = {k: self.expected[k] for k in converted if k in self.expected}
        kind = f"{self.kind} ({where})" if where else self.kind
        report = check_conversion(kind, converted, sources, leftover, sub, self.drop)
        self._seen_sources.update(in_piece)
        self._sources.update(report.sources)
        self._dropped.update(report.dropped)
        self._shapes.update({k: torch.empty(tuple(v.shape), device="meta") for k, v in converted.items()})

    def finish(self) -> ConversionReport:
        """Check that every expected key arrived; return the report of all pieces.

        Raises:
            CheckpointError: listing the missing keys (with their source names when known).
        """
        report = check_conversion(
            self.kind, self._shapes, self._sources, [], self.expected, {}, source_names=self.source_names,
            container=self.container, source_prefix=self.source_prefix, target_prefix=self.target_prefix,
        )
        report.dropped = dict(self._dropped)
        return report
