"""A point cloud: an (N, C) float32 array with named channels; the first three are x, y, z."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.errors import ShapeError


@dataclass(frozen=True, slots=True)
class PointCloud:
    """Points in the frame of their ``Frame`` (ego: x forward, y left, z up, metres).

    ``channels`` names every column, e.g. ``("x", "y", "z", "intensity")``; intensity is in [0, 1].
    """

    data: np.ndarray
    channels: tuple[str, ...] = ("x", "y", "z", "intensity")

    def __post_init__(self) -> None:
        data = np.ascontiguousarray(self.data, dtype=np.float32)
        if data.ndim != 2 or data.shape[1] != len(self.channels):
            raise ShapeError(f"points {data.shape} vs channels {self.channels}")
        if self.channels[:3] != ("x", "y", "z"):
            raise ShapeError(f"the first three channels must be x, y, z, got {self.channels[:3]}")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "channels", tuple(self.channels))

    def __len__(self) -> int:
        return self.data.shape[0]

    @property
    def xyz(self) -> np.ndarray:
        return self.data[:, :3]

    def channel(self, name: str) -> np.ndarray:
        if name not in self.channels:
            raise KeyError(f"no channel {name!r}; channels are {self.channels}")
        return self.data[:, self.channels.index(name)]

    def __getitem__(self, index) -> PointCloud:
        """Select points by mask or index array."""
        return PointCloud(self.data[index], self.channels)

    def with_data(self, data: np.ndarray) -> PointCloud:
        return PointCloud(data, self.channels)
