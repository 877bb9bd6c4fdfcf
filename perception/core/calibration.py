"""Sensor calibration: where every sensor sits on the ego vehicle, and how cameras project.

All extrinsics are stored as ``T_ego_from_<sensor>``; any sensor-to-sensor transform is
derived from them (``calib.T("cam2", "lidar")`` maps lidar points into camera 2).
Camera frames follow the OpenCV convention: x right, y down, z forward (optical axis).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from perception.core.readonly import ReadOnlyDict
from perception.core.se3 import SE3
from perception.errors import ShapeError

EGO = "ego"


@dataclass(frozen=True, slots=True)
class CameraIntrinsics:
    """Pinhole intrinsics ``K`` (3x3, pixels) and the image size in pixels."""

    K: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ShapeError(f"K must be 3x3, got {K.shape}")
        object.__setattr__(self, "K", K)


@dataclass(frozen=True, slots=True)
class Calibration:
    """``extrinsics[name]`` is ``T_ego_from_<name>``; ``cameras[name]`` the camera's intrinsics."""

    extrinsics: Mapping[str, SE3] = field(default_factory=dict)
    cameras: Mapping[str, CameraIntrinsics] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = set(self.cameras) - set(self.extrinsics)
        if missing:
            raise ShapeError(f"cameras without extrinsics: {sorted(missing)}")
        object.__setattr__(self, "extrinsics", ReadOnlyDict(self.extrinsics))
        object.__setattr__(self, "cameras", ReadOnlyDict(self.cameras))

    def T_ego_from(self, sensor: str) -> SE3:
        if sensor == EGO:
            return SE3.identity()
        if sensor not in self.extrinsics:
            raise KeyError(f"no sensor {sensor!r}; calibrated sensors: {sorted(self.extrinsics)}")
        return self.extrinsics[sensor]

    def T(self, dst: str, src: str) -> SE3:
        """``T_dst_from_src`` between any two sensors (or ``"ego"``)."""
        return self.T_ego_from(dst).inverse() @ self.T_ego_from(src)

    def project(self, points: np.ndarray, camera: str, src: str = EGO) -> tuple[np.ndarray, np.ndarray]:
        """Project (N, 3) points of frame ``src`` into ``camera``.

        Returns:
            uv: (N, 2) float64 pixel coordinates (meaningless where depth <= 0).
            depth: (N,) float64 distance along the optical axis, metres.
        """
        xyz_cam = self.T(camera, src).apply(np.asarray(points, dtype=np.float64)[:, :3])
        depth = xyz_cam[:, 2]
        uvw = xyz_cam @ self.cameras[camera].K.T
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = uvw[:, :2] / depth[:, None]
        return uv, depth
