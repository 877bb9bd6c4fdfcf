"""Box geometry: corners, points-in-box, projection into images (clipped at the image plane)."""

from __future__ import annotations

import warnings

import numpy as np

from perception.core.calibration import EGO, Calibration

# Unit corners in box coordinates, counter-clockwise seen from above; 0-3 bottom, 4-7 top.
# Corners 0, 3, 4, 7 form the front face (+x, the heading).
_UNIT_CORNERS = np.array(
    [[0.5, 0.5, -0.5], [-0.5, 0.5, -0.5], [-0.5, -0.5, -0.5], [0.5, -0.5, -0.5],
     [0.5, 0.5, 0.5], [-0.5, 0.5, 0.5], [-0.5, -0.5, 0.5], [0.5, -0.5, 0.5]]
)  # fmt: skip
BOX_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]]
)  # fmt: skip
NEAR_PLANE_M = 0.1


def box_corners(xyz_lwh_yaw: np.ndarray) -> np.ndarray:
    """(N, 7) boxes -> (N, 8, 3) float64 corners (order: see ``_UNIT_CORNERS``)."""
    b = np.asarray(xyz_lwh_yaw, dtype=np.float64).reshape(-1, 7)
    local = _UNIT_CORNERS[None] * b[:, None, 3:6]
    c, s = np.cos(b[:, 6])[:, None], np.sin(b[:, 6])[:, None]
    x = local[..., 0] * c - local[..., 1] * s
    y = local[..., 0] * s + local[..., 1] * c
    return np.stack([x, y, local[..., 2]], axis=-1) + b[:, None, :3]


def bev_corners(xyz_lwh_yaw: np.ndarray) -> np.ndarray:
    """(N, 7) boxes -> (N, 4, 2) float64 BEV corners, counter-clockwise."""
    return box_corners(xyz_lwh_yaw)[:, :4, :2]


def points_in_boxes(points_xyz: np.ndarray, xyz_lwh_yaw: np.ndarray, margin_m: float = 0.0) -> np.ndarray:
    """(N, 3) points and (M, 7) boxes -> (N, M) bool: point n lies in (or on) box m."""
    pts = np.asarray(points_xyz, dtype=np.float64)[:, :3]
    b = np.asarray(xyz_lwh_yaw, dtype=np.float64).reshape(-1, 7)
    d = pts[:, None, :] - b[None, :, :3]  # (N, M, 3)
    c, s = np.cos(b[:, 6]), np.sin(b[:, 6])
    lx = d[..., 0] * c + d[..., 1] * s
    ly = -d[..., 0] * s + d[..., 1] * c
    half = b[:, 3:6] / 2 + margin_m
    return (np.abs(lx) <= half[:, 0]) & (np.abs(ly) <= half[:, 1]) & (np.abs(d[..., 2]) <= half[:, 2])


def count_points_in_boxes(points_xyz: np.ndarray, xyz_lwh_yaw: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """(M,) number of points inside each box, in chunks so big clouds stay small in memory."""
    counts = np.zeros(len(np.asarray(xyz_lwh_yaw).reshape(-1, 7)), dtype=np.int64)
    for start in range(0, len(points_xyz), chunk):
        counts += points_in_boxes(points_xyz[start : start + chunk], xyz_lwh_yaw).sum(axis=0)
    return counts


def project_box_edges(
    xyz_lwh_yaw: np.ndarray, calib: Calibration, camera: str, src: str = EGO
) -> tuple[np.ndarray, np.ndarray]:
    """Project the 12 edges of every box into ``camera``, clipping each edge at the near plane.

    Returns:
        segments: (N, 12, 2, 2) float64 pixel end points of each visible edge part.
        visible: (N, 12) bool, False where the whole edge lies behind the camera.
    """
    corners = box_corners(xyz_lwh_yaw)
    n = len(corners)
    cam = calib.T(camera, src).apply(corners.reshape(-1, 3)).reshape(n, 8, 3)
    a, b = cam[:, BOX_EDGES[:, 0]], cam[:, BOX_EDGES[:, 1]]  # (N, 12, 3)
    za, zb = a[..., 2:3], b[..., 2:3]
    visible = (za[..., 0] >= NEAR_PLANE_M) | (zb[..., 0] >= NEAR_PLANE_M)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.clip((NEAR_PLANE_M - za) / (zb - za), 0.0, 1.0)
    cut = a + t * (b - a)
    a = np.where(za < NEAR_PLANE_M, cut, a)
    b = np.where(zb < NEAR_PLANE_M, cut, b)
    K = calib.cameras[camera].K
    ends = np.stack([a, b], axis=2) @ K.T  # (N, 12, 2, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        segments = ends[..., :2] / ends[..., 2:3]
    return np.where(visible[..., None, None], segments, 0.0), visible


def project_boxes_to_rects(
    xyz_lwh_yaw: np.ndarray, calib: Calibration, camera: str, src: str = EGO, clip_to_image: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """2D bounding rectangles of the projected boxes.

    Returns:
        xyxy: (N, 4) float32 pixel rectangles (clipped to the image when ``clip_to_image``).
        valid: (N,) bool, False for boxes wholly behind the camera or outside the image.
    """
    segments, visible = project_box_edges(xyz_lwh_yaw, calib, camera, src)
    pts = segments.reshape(len(segments), 24, 2)  # 12 edges x 2 end points
    mask = np.repeat(visible, 2, axis=1)
    big = np.where(mask[..., None], pts, np.nan)
    with warnings.catch_warnings():  # boxes with no visible edge give all-NaN rows
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(big, axis=1), np.nanmax(big, axis=1)
    xyxy = np.concatenate([lo, hi], axis=1)
    valid = visible.any(axis=1)
    if clip_to_image:
        intr = calib.cameras[camera]
        xyxy = np.clip(xyxy, 0, [intr.width, intr.height, intr.width, intr.height])
        valid &= (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    return np.nan_to_num(xyxy).astype(np.float32), valid
