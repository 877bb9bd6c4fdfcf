"""Multi-object tracking: ``Tracker3D`` over ``Boxes3D``, ``Tracker2D`` (ByteTrack) over ``Boxes2D``.

Both take one frame's detections per ``update`` call and return the reported tracks with
``track_ids``; ``reset()`` starts a new sequence. ``build_tracker("3d" | "2d", **params)``
builds one from plain keyword parameters (a YAML section or CLI overrides).
"""

from __future__ import annotations

from typing import Any

from perception.errors import ConfigError
from perception.tracking.tracker2d import Params2D, Tracker2D
from perception.tracking.tracker3d import Params3D, Tracker3D

TRACKERS: dict[str, type] = {"3d": Tracker3D, "2d": Tracker2D}


def build_tracker(kind: str, **params: Any) -> Tracker3D | Tracker2D:
    """``build_tracker("3d", similarity="giou_3d", per_class={0: {"max_age": 4}})`` or ``build_tracker("2d", ...)``."""
    if kind not in TRACKERS:
        raise ConfigError(f"tracker {kind!r}: choose from {sorted(TRACKERS)}")
    if kind == "3d":
        per_class = params.pop("per_class", None)
        return Tracker3D(params, per_class=per_class)
    return Tracker2D(params)


__all__ = ["TRACKERS", "Params2D", "Params3D", "Tracker2D", "Tracker3D", "build_tracker"]
