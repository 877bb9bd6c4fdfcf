"""One JSON-ready record per streamed frame: detections, tracks and timings.

Schema (one line of ``--jsonl``)::

    {"source": "clip", "index": 12, "timestamp_s": 1.2, "latency_ms": {"inference": 8.1, ...},
     "boxes3d": [{"label": "Car", "score": 0.91, "track_id": 4, "xyz_lwh_yaw": [x, y, z, l, w, h, yaw]}],
     "boxes2d": {"camera": [{"label": "car", "score": 0.8, "track_id": 2, "xyxy": [x1, y1, x2, y2]}]}}

3D boxes are in the frame's ego frame (metres, radians); 2D boxes in pixels. ``track_id`` is
present only for tracked boxes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perception.core import Boxes2D, Boxes3D, Frame


def boxes_record(boxes: Boxes3D | Boxes2D | None, class_names: tuple[str, ...]) -> list[dict[str, Any]]:
    """A list of plain dicts, one per box, with floats rounded to what matters (mm, 1e-4 rad, 0.1 px)."""
    if boxes is None:
        return []
    geometry = ("xyz_lwh_yaw", 4) if isinstance(boxes, Boxes3D) else ("xyxy", 1)
    rows = getattr(boxes, geometry[0])
    out = []
    for i in range(len(boxes)):
        label = int(boxes.labels[i])
        row: dict[str, Any] = {"label": class_names[label] if 0 <= label < len(class_names) else str(label)}
        if boxes.scores is not None:
            row["score"] = round(float(boxes.scores[i]), 4)
        if boxes.track_ids is not None:
            row["track_id"] = int(boxes.track_ids[i])
        row[geometry[0]] = [round(float(v), geometry[1]) for v in rows[i]]
        out.append(row)
    return out


def frame_record(
    frame: Frame,
    class_names: tuple[str, ...],
    boxes3d: Boxes3D | None,
    boxes2d: Mapping[str, Boxes2D],
    latency_ms: Mapping[str, float],
) -> dict[str, Any]:
    """The record of one frame (see the module docstring)."""
    return {
        "source": frame.sequence,
        "index": int(frame.index),
        "timestamp_s": None if frame.timestamp_s != frame.timestamp_s else round(float(frame.timestamp_s), 6),
        "latency_ms": {k: round(float(v), 2) for k, v in latency_ms.items()},
        "boxes3d": boxes_record(boxes3d, class_names),
        "boxes2d": {cam: boxes_record(b, class_names) for cam, b in boxes2d.items()},
    }
