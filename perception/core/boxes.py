"""Box sets. Each field has one row per box; indexing a set indexes every field.

3D boxes live in the frame of their ``Frame`` (ego: x forward, y left, z up, metres):
``(x, y, z)`` is the geometric centre, ``(l, w, h)`` the extent along the box's own x (heading),
y and z axes, ``yaw`` the heading about +z, counter-clockwise from +x, in radians.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from perception.core.readonly import ReadOnlyDict
from perception.errors import ShapeError


def _column(name: str, value: Any, n: int, width: int | None, dtype: Any) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=dtype)
    want = (n,) if width is None else (n, width)
    if arr.shape != want:
        if n == 0 and arr.size == 0:
            return arr.reshape(want)
        raise ShapeError(f"{name} has shape {arr.shape}, expected {want}")
    return arr


def _checked_attributes(attributes: Mapping[str, Any], n: int) -> ReadOnlyDict:
    attrs = {}
    for k, v in attributes.items():
        v = np.asarray(v)
        if v.shape[:1] != (n,):
            raise ShapeError(f"attribute {k!r} has shape {v.shape}, expected ({n}, ...)")
        attrs[k] = v
    return ReadOnlyDict(attrs)


class _BoxSet:
    """Shared behaviour: length, indexing of every per-box field, concatenation."""

    _PER_BOX: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index) -> Any:
        if isinstance(index, (int, np.integer)):
            index = [index]
        kwargs = {name: None if getattr(self, name) is None else getattr(self, name)[index] for name in self._PER_BOX}
        kwargs["attributes"] = {k: v[index] for k, v in self.attributes.items()}
        return type(self)(**kwargs)

    def replace(self, **changes: Any) -> Any:
        return replace(self, **changes)

    @classmethod
    def concatenate(cls, sets: list) -> Any:
        if not sets:
            return cls.empty()
        kwargs = {}
        for name in cls._PER_BOX:
            cols = [getattr(s, name) for s in sets]
            kwargs[name] = None if any(c is None for c in cols) else np.concatenate(cols)
        keys = set.intersection(*(set(s.attributes) for s in sets))
        kwargs["attributes"] = {k: np.concatenate([s.attributes[k] for s in sets]) for k in keys}
        return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class Boxes3D(_BoxSet):
    """N oriented 3D boxes (see module docstring for the convention).

    Attributes:
        xyz_lwh_yaw: (N, 7) float32.
        labels: (N,) int64 index into the frame's ``class_names``.
        scores: (N,) float32 confidences; None for ground truth.
        track_ids: (N,) int64 identities across frames; None when unknown.
        velocity_xy: (N, 2) float32 m/s in the same frame; None when unknown.
        attributes: extra (N,)-shaped columns by name, e.g. ``truncated``, ``occluded``,
            ``alpha``, ``difficulty``, ``num_points``, ``box2d`` ((N, 4)).
    """

    xyz_lwh_yaw: np.ndarray
    labels: np.ndarray
    scores: np.ndarray | None = None
    track_ids: np.ndarray | None = None
    velocity_xy: np.ndarray | None = None
    attributes: Mapping[str, np.ndarray] = field(default_factory=dict)

    _PER_BOX = ("xyz_lwh_yaw", "labels", "scores", "track_ids", "velocity_xy")

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        n = len(labels)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "xyz_lwh_yaw", _column("xyz_lwh_yaw", self.xyz_lwh_yaw, n, 7, np.float32))
        object.__setattr__(self, "scores", _column("scores", self.scores, n, None, np.float32))
        object.__setattr__(self, "track_ids", _column("track_ids", self.track_ids, n, None, np.int64))
        object.__setattr__(self, "velocity_xy", _column("velocity_xy", self.velocity_xy, n, 2, np.float32))
        object.__setattr__(self, "attributes", _checked_attributes(self.attributes, n))

    @classmethod
    def empty(cls) -> Boxes3D:
        return cls(np.zeros((0, 7), np.float32), np.zeros(0, np.int64))

    @property
    def xyz(self) -> np.ndarray:
        return self.xyz_lwh_yaw[:, 0:3]

    @property
    def lwh(self) -> np.ndarray:
        return self.xyz_lwh_yaw[:, 3:6]

    @property
    def yaw(self) -> np.ndarray:
        return self.xyz_lwh_yaw[:, 6]

    def transformed(self, T_dst_from_src) -> Boxes3D:
        """The same boxes in another frame; yaw gains the transform's rotation about z.

        Exact when the transform's rotation is about z only (ego poses, lidar mounts); otherwise
        the box is kept upright, as every driving dataset's boxes are.
        """
        xyz = T_dst_from_src.apply(self.xyz.astype(np.float64))
        yaw = wrap_angle(self.yaw + T_dst_from_src.yaw_rad)
        out = np.concatenate([xyz, self.lwh, yaw[:, None]], axis=1).astype(np.float32)
        vel = self.velocity_xy
        if vel is not None:
            v3 = np.concatenate([vel, np.zeros((len(vel), 1))], axis=1)
            vel = T_dst_from_src.apply_vectors(v3)[:, :2]
        return replace(self, xyz_lwh_yaw=out, velocity_xy=vel)


@dataclass(frozen=True, slots=True)
class Boxes2D(_BoxSet):
    """N axis-aligned image boxes in pixels: ``xyxy`` = (x1, y1, x2, y2), x right, y down.

    Same optional fields as ``Boxes3D`` (scores, track ids, attributes).
    """

    xyxy: np.ndarray
    labels: np.ndarray
    scores: np.ndarray | None = None
    track_ids: np.ndarray | None = None
    attributes: Mapping[str, np.ndarray] = field(default_factory=dict)

    _PER_BOX = ("xyxy", "labels", "scores", "track_ids")

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        n = len(labels)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "xyxy", _column("xyxy", self.xyxy, n, 4, np.float32))
        object.__setattr__(self, "scores", _column("scores", self.scores, n, None, np.float32))
        object.__setattr__(self, "track_ids", _column("track_ids", self.track_ids, n, None, np.int64))
        object.__setattr__(self, "attributes", _checked_attributes(self.attributes, n))

    @classmethod
    def empty(cls) -> Boxes2D:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))

    @property
    def width(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def height(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]


def wrap_angle(angle_rad: np.ndarray) -> np.ndarray:
    """Wrap to [-pi, pi)."""
    return (np.asarray(angle_rad) + np.pi) % (2 * np.pi) - np.pi
