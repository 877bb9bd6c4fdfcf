"""What an exported 3D detector carries so that it runs with nothing else: classes, input spec,
point range, post-processing settings and the resolved run config.

ONNX files hold it as ``metadata_props`` (string -> string, JSON values); TensorRT engines in a
header before the serialized engine (``perception.deploy.engine_file``). Written by
``perception export``, read by ``load_predictor``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from perception.errors import CheckpointError

FORMAT = "perception.detect3d/1"  # bump when the graph's inputs or outputs change meaning
OUTPUTS = {
    "boxes": "(K, 7) float32 x y z l w h yaw: ego frame (x fwd, y left, z up), geometric centre, m, rad",
    "scores": "(K,) float32; kept detections first, best first; 0 on padding rows",
    "labels": "(K,) int64 index into classes",
    "num_detections": "() int64: rows of boxes / scores / labels that are detections",
}


def detector_metadata(config: dict[str, Any], settings: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The metadata of a detector built from ``config`` (resolved run config) with model ``settings``."""
    channels = list(settings["point_channels"])
    return {
        "format": FORMAT,
        "classes": list(settings["classes"]),
        "point_channels": channels,
        "point_range": list(settings["point_range"]),
        "inputs": {
            "points": f"(N, {len(channels)}) float32 {channels}: ego frame, metres; any N >= 0, "
            "points outside point_range are ignored"
        },
        "outputs": OUTPUTS,
        "max_detections": int(settings["max_detections"]),
        "score_thresholds": list(settings["score_thresholds"]),
        "nms_iou": float(settings["nms_iou"]),
        "model": settings,
        "config": config,
        **extra,
    }


def to_strings(meta: dict[str, Any]) -> dict[str, str]:
    """JSON-encode every value (ONNX metadata values are strings)."""
    return {k: json.dumps(v, default=str) for k, v in meta.items()}


def from_strings(props: dict[str, str], path: str | Path) -> dict[str, Any]:
    """Decode ``to_strings`` output; a file without our format key is a CheckpointError."""
    if "format" not in props:
        raise CheckpointError(
            "no perception metadata in this model: export it with `perception export --weights <checkpoint.pt>`",
            path=path,
        )
    try:
        meta = {k: json.loads(v) for k, v in props.items()}
    except json.JSONDecodeError as e:
        raise CheckpointError(f"unreadable perception metadata ({e})", path=path) from None
    if meta["format"] != FORMAT:
        raise CheckpointError(f"exported as {meta['format']!r}; this version reads {FORMAT!r}: export again", path=path)
    missing = [k for k in ("classes", "point_channels", "max_detections") if k not in meta]
    if missing:
        raise CheckpointError(f"perception metadata lacks {missing}", path=path)
    return meta
