"""Plain data types and geometry. Imports nothing else from perception except errors."""

from perception.core.boxes import Boxes2D, Boxes3D, wrap_angle
from perception.core.calibration import EGO, Calibration, CameraIntrinsics
from perception.core.frame import Frame, Predictions
from perception.core.geometry import (
    BOX_EDGES,
    bev_corners,
    box_corners,
    count_points_in_boxes,
    points_in_boxes,
    project_box_edges,
    project_boxes_to_rects,
)
from perception.core.iou import bev_intersection, bev_iou, iou2d, iou3d
from perception.core.pointcloud import PointCloud
from perception.core.se3 import SE3, rotation_z

__all__ = [
    "BOX_EDGES", "EGO", "SE3", "Boxes2D", "Boxes3D", "Calibration", "CameraIntrinsics", "Frame", "PointCloud", "Predictions",
    "bev_corners", "bev_intersection", "bev_iou", "box_corners", "count_points_in_boxes", "iou2d", "iou3d",
    "points_in_boxes", "project_box_edges", "project_boxes_to_rects", "rotation_z", "wrap_angle",
]  # fmt: skip
