"""Per-class tracker parameters, one set per class and detector family (never per sequence).

``kitti``: tuned on the KITTI tracking validation split with PointRCNN detections (AB3DMOT's
input); the starting point was AB3DMOT's own per-class choice (GIoU for cars and pedestrians,
centre distance for cyclists). Tuned on that split itself, as AB3DMOT's were, so the KITTI
numbers in BENCHMARKS.md are not held-out results. Cyclist is AB3DMOT's choice, untuned (no
cyclist detections here). Used by ``perception track`` and ``benchmarks/bench_tracking.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perception.errors import ConfigError
from perception.tracking.tracker3d import Tracker3D

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "kitti": {
        "Car": {
            "similarity": "giou_3d", "threshold": -0.2, "matcher": "hungarian", "min_hits": 2, "max_age": 2,
            "max_coast": 1, "coast_penalty": 5.0, "measure_var": (0.1, 0.1, 0.1, 0.3, 0.3, 0.3, 1.0),
        },
        "Pedestrian": {
            "similarity": "giou_3d", "threshold": -0.3, "matcher": "hungarian", "min_hits": 1, "max_age": 4,
            "max_coast": 2, "coast_penalty": 2.0, "measure_var": (0.05, 0.05, 0.05, 3.0, 3.0, 3.0, 0.1),
        },
        "Cyclist": {"similarity": "dist_3d", "threshold": -6.0, "matcher": "hungarian", "min_hits": 3, "max_age": 4, "max_coast": 3},
    },
    "default": {},
}  # fmt: skip


def tracker_for_classes(
    class_names: tuple[str, ...], preset: str = "kitti", overrides: Mapping[str, Any] | None = None
) -> Tracker3D:
    """A ``Tracker3D`` with the preset's parameters for each named class (labels index ``class_names``).

    ``overrides`` (e.g. from ``--set max_age=3``) apply to every class, on top of the preset.
    """
    if preset not in PRESETS:
        raise ConfigError(f"tracker preset {preset!r}: choose from {sorted(PRESETS)}")
    table = PRESETS[preset]
    extra = dict(overrides or {})
    per_class = {i: {**table[name], **extra} for i, name in enumerate(class_names) if name in table}
    return Tracker3D(extra, per_class=per_class)
