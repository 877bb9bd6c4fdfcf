"""The one record every loader produces and every consumer reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from perception.core.boxes import Boxes2D, Boxes3D
from perception.core.calibration import Calibration
from perception.core.pointcloud import PointCloud
from perception.core.readonly import ReadOnlyDict
from perception.core.se3 import SE3


@dataclass(frozen=True, slots=True)
class Frame:
    """One time step of one sequence of one dataset.

    Points and 3D boxes are in the ego frame (x forward, y left, z up, metres). For KITTI the
    ego frame is the Velodyne frame; for nuScenes, Waymo and Argoverse 2 it is the dataset's
    own vehicle frame. 2D boxes are per camera, in that camera's pixels.

    Attributes:
        dataset: loader name, e.g. ``"kitti"``.
        sequence: sequence / scene / log id ("" for datasets without sequences).
        index: frame index within the sequence (KITTI object: the file number).
        timestamp_s: seconds (dataset clock); NaN when unknown.
        class_names: what ``labels`` index into.
        points: the lidar sweep, or None for camera-only frames.
        images: camera name -> (H, W, 3) uint8 BGR image.
        calibration: extrinsics and intrinsics of every sensor.
        ego_pose: ``T_world_from_ego``, or None when the dataset has no poses.
        boxes3d: ground truth 3D boxes (None for unlabelled frames).
        boxes2d: camera name -> ground-truth 2D boxes.
    """

    dataset: str
    sequence: str
    index: int
    timestamp_s: float
    class_names: tuple[str, ...]
    points: PointCloud | None = None
    images: Mapping[str, np.ndarray] = field(default_factory=dict)
    calibration: Calibration = field(default_factory=Calibration)
    ego_pose: SE3 | None = None
    boxes3d: Boxes3D | None = None
    boxes2d: Mapping[str, Boxes2D] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "images", ReadOnlyDict(self.images))
        object.__setattr__(self, "boxes2d", ReadOnlyDict(self.boxes2d))

    @property
    def name(self) -> str:
        """A readable id for messages and file names: ``kitti/0001/000042``."""
        return (
            f"{self.dataset}/{self.sequence}/{self.index:06d}" if self.sequence else f"{self.dataset}/{self.index:06d}"
        )


@dataclass(frozen=True, slots=True)
class Predictions:
    """What a Predictor returns for one frame: 3D boxes (ego frame), 2D boxes per camera,
    and the time each stage took (``{"preprocess": ms, "inference": ms, "postprocess": ms}``)."""

    boxes3d: Boxes3D | None = None
    boxes2d: Mapping[str, Boxes2D] = field(default_factory=dict)
    latency_ms: Mapping[str, float] = field(default_factory=dict)
