"""Write converted tensors into a `from_pretrained` folder incrementally (see `modeling.persistence`).

Memory design: `write` is called once per converted source shard and puts that shard's tensors on disk at
once, so nothing is kept between shards:
  * `llm.*` tensors become one safetensors shard of the Hugging Face folder `llm/` each time (renamed to
    `model-0000i-of-0000n.safetensors` with an index JSON at the end, the layout `Phi3ForCausalLM` reads);
  * every other tensor goes to a temporary part file; `finish` joins the parts into the single
    `model.safetensors` that `load_pretrained` reads by copying byte ranges (a safetensors file is a JSON
    header followed by raw tensor bytes), so the join holds a fixed-size buffer, not tensors.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import torch

from videoglamm.config import VideoGLaMMConfig
from videoglamm.errors import CheckpointError
from videoglamm.modeling.persistence import LLM_DIR, WEIGHTS

LLM_PREFIX = "llm."
_PARTS_DIR = ".parts"
_COPY_CHUNK = 64 << 20


def _read_header(path: Path) -> tuple[dict, int]:
    """(safetensors header, offset of the data section) of a file."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(size)), 8 + size


def join_safetensors(parts: list[Path], dst: Path, metadata: dict[str, str] | None = None) -> None:
    """Concatenate safetensors files into one, copying tensor bytes in chunks (no tensor is loaded).

    Raises:
        CheckpointError: a tensor name occurs in two parts.
    """
    entries: list[tuple[str, dict, Path, int]] = []  # name, header entry, file, data start
    seen: dict[str, Path] = {}
    for part in parts:
        header, start = _read_header(part)
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if name in seen:
                raise CheckpointError(f"tensor {name!r} written twice ({seen[name].name}, {part.name})")
            seen[name] = part
            entries.append((name, info, part, start))
    header: dict[str, object] = {"__metadata__": metadata or {}}
    offset = 0
    for name, info, _, _ in entries:
        begin, end = info["data_offsets"]
        size = end - begin
        header[name] = {"dtype": info["dtype"], "shape": info["shape"],
                        "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data section starts 8-byte aligned, as safetensors writes it
    with open(dst, "wb") as out:
        out.write(struct.pack("<Q", len(raw)))
        out.write(raw)
        for _, info, part, start in entries:
            begin, end = info["data_offsets"]
            with open(part, "rb") as f:
                f.seek(start + begin)
                remaining = end - begin
                while remaining:
                    chunk = f.read(min(_COPY_CHUNK, remaining))
                    if not chunk:
                        raise CheckpointError(f"{part} ends before tensor bytes {begin}..{end}")
                    out.write(chunk)
                    remaining -= len(chunk)


class FolderWriter:
    """Writes our full-model tensors, piece by piece, into `root` in the `save_pretrained` layout.

    Args:
        root: the (temporary) output folder.
        dtype: cast every tensor to this dtype; None keeps each tensor's dtype.
    """

    def __init__(self, root: Path, dtype: torch.dtype | None = None) -> None:
        self.root = root
        self.dtype = dtype
        self._llm_files: list[tuple[Path, list[str]]] = []
        self._parts: list[Path] = []
        self._llm_bytes = 0
        (root / LLM_DIR).mkdir(parents=True, exist_ok=True)
        (root / _PARTS_DIR).mkdir(exist_ok=True)

    def _prepare(self, value: torch.Tensor) -> torch.Tensor:
        value = value if self.dtype is None else value.to(self.dtype)
        return value.contiguous()

    def write(self, tensors: dict[str, torch.Tensor]) -> None:
        """Write one piece (full-model keys) to disk now."""
        from safetensors.torch import save_file

        llm = {k[len(LLM_PREFIX):]: self._prepare(v) for k, v in tensors.items() if k.startswith(LLM_PREFIX)}
        rest = {k: self._prepare(v) for k, v in tensors.items() if not k.startswith(LLM_PREFIX)}
        if llm:
            path = self.root / LLM_DIR / f".shard-{len(self._llm_files):05d}.safetensors"
            save_file(llm, path, metadata={"format": "pt"})
            self._llm_files.append((path, list(llm)))
            self._llm_bytes += sum(v.numel() * v.element_size() for v in llm.values())
        if rest:
            path = self.root / _PARTS_DIR / f"part-{len(self._parts):05d}.safetensors"
            save_file(rest, path, metadata={"format": "pt"})
            self._parts.append(path)

    def finish(self, config: VideoGLaMMConfig) -> None:
        """Write config.json, `model.safetensors` (joined parts), and `llm/` (shard names, index, config)."""
        join_safetensors(self._parts, self.root / WEIGHTS, metadata={"format": "pt"})
        shutil.rmtree(self.root / _PARTS_DIR)
        n = len(self._llm_files)
        weight_map: dict[str, str] = {}
        for i, (path, keys) in enumerate(self._llm_files):
            name = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            path.rename(path.with_name(name))
            weight_map.update({k: name for k in keys})
        index = {"metadata": {"total_size": self._llm_bytes}, "weight_map": weight_map}
        (self.root / LLM_DIR / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
        phi3 = config.llm.to_phi3()
        phi3.architectures = ["Phi3ForCausalLM"]
        phi3.save_pretrained(self.root / LLM_DIR)
        config.save_pretrained(self.root)
