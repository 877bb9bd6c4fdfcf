"""The ``.engine`` file layout of a perception 3D detector, and the check that it fits this machine.

Layout: ``MAGIC`` (16 bytes), metadata length (uint32, little-endian), metadata (UTF-8 JSON: the
ONNX metadata plus TensorRT version, GPU, precision and point-count profile), then TensorRT's
serialized engine. A serialized engine only runs on the TensorRT version and GPU architecture it
was built with; the metadata lets us say so in one line instead of TensorRT's deserialisation log.
Written by ``perception export --format engine``; read by ``perception.deploy.tensorrt_engine``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from perception.deploy.metadata import FORMAT
from perception.errors import CheckpointError
from perception.files import atomic_write

MAGIC = b"PERCEPTION-TRT\x00\x01"
_HEADER = struct.Struct("<16sI")


def write_engine_file(path: str | Path, meta: dict[str, Any], engine: bytes) -> Path:
    """Write metadata + serialized engine atomically; returns ``path``."""
    path = Path(path)
    text = json.dumps(meta, default=str).encode()
    with atomic_write(path, "wb") as f:
        f.write(_HEADER.pack(MAGIC, len(text)))
        f.write(text)
        f.write(engine)
    return path


def is_perception_engine(path: str | Path) -> bool:
    """True when ``path`` starts with our magic (any other ``.engine`` may be an ultralytics one)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def read_engine_file(path: str | Path) -> tuple[dict[str, Any], bytes]:
    """(metadata, serialized engine); missing, foreign or truncated files are a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("TensorRT engine not found", path=path)
    data = path.read_bytes()
    if len(data) < _HEADER.size or data[: len(MAGIC)] != MAGIC:
        raise CheckpointError(
            "not a perception TensorRT engine (build it with `perception export --format engine`)", path=path
        )
    _, n = _HEADER.unpack_from(data)
    end = _HEADER.size + n
    try:
        meta = json.loads(data[_HEADER.size : end].decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError("corrupt engine header (truncated or overwritten file)", path=path) from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"engine of format {meta.get('format')!r}; this version reads {FORMAT!r}", path=path)
    if len(data) <= end:
        raise CheckpointError("engine file holds metadata but no engine (truncated)", path=path)
    return meta, data[end:]


def check_compatible(meta: dict[str, Any], here: dict[str, str], path: str | Path) -> None:
    """Refuse an engine built for another TensorRT version or GPU architecture.

    Args:
        meta: the engine's metadata (``tensorrt``, ``gpu``, ``compute_capability`` keys).
        here: the same keys for this machine (``perception.deploy.tensorrt_engine.runtime_info``).
    """
    built = {k: str(meta.get(k, "?")) for k in ("tensorrt", "gpu", "compute_capability")}
    if built["tensorrt"] != here["tensorrt"] or built["compute_capability"] != here["compute_capability"]:
        raise CheckpointError(
            f"engine built with TensorRT {built['tensorrt']} for {built['gpu']} (sm {built['compute_capability']}); "
            f"this machine has TensorRT {here['tensorrt']} on {here['gpu']} (sm {here['compute_capability']}): "
            "rebuild it here with `perception export --weights <model.onnx or .pt> --format engine`",
            path=path,
        )
