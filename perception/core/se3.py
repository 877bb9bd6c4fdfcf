"""Rigid transforms. ``T_a_from_b`` maps points expressed in frame b into frame a."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.errors import ShapeError


@dataclass(frozen=True, slots=True)
class SE3:
    """A 4x4 rigid transform (float64). Compose with ``@``: ``T_a_from_c = T_a_from_b @ T_b_from_c``."""

    matrix: np.ndarray

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.shape != (4, 4):
            raise ShapeError(f"SE3 needs a 4x4 matrix, got {m.shape}")
        object.__setattr__(self, "matrix", m)

    @classmethod
    def identity(cls) -> SE3:
        return cls(np.eye(4))

    @classmethod
    def from_rt(cls, rotation: np.ndarray, translation: np.ndarray) -> SE3:
        m = np.eye(4)
        m[:3, :3] = rotation
        m[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
        return cls(m)

    @classmethod
    def from_quaternion(cls, wxyz: np.ndarray, translation: np.ndarray) -> SE3:
        """From a unit quaternion (w, x, y, z), as nuScenes and Argoverse 2 store poses."""
        return cls.from_rt(quaternion_to_matrix(np.asarray(wxyz, dtype=np.float64)), translation)

    @property
    def rotation(self) -> np.ndarray:
        return self.matrix[:3, :3]

    @property
    def translation(self) -> np.ndarray:
        return self.matrix[:3, 3]

    @property
    def yaw_rad(self) -> float:
        """Rotation about +z of the transformed x axis (exact for planar motion)."""
        return float(np.arctan2(self.matrix[1, 0], self.matrix[0, 0]))

    def inverse(self) -> SE3:
        r = self.rotation
        return SE3.from_rt(r.T, -r.T @ self.translation)

    def __matmul__(self, other: SE3) -> SE3:
        return SE3(self.matrix @ other.matrix)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform (N, 3+) points; extra columns are carried along unchanged. Keeps the input dtype."""
        points = np.asarray(points)
        out = points.copy()
        xyz = points[:, :3].astype(np.float64) @ self.rotation.T + self.translation
        out[:, :3] = xyz.astype(points.dtype) if points.dtype.kind == "f" else xyz
        return out

    def apply_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Rotate (N, 3) direction vectors (velocities), without translating them."""
        return np.asarray(vectors, dtype=np.float64) @ self.rotation.T


def quaternion_to_matrix(wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = wxyz / np.linalg.norm(wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_z(yaw_rad: float) -> np.ndarray:
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
