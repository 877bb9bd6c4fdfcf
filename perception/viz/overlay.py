"""Camera overlays: 3D boxes projected into an image (edges clipped at the image plane, then
at the image border), 2D boxes, and track trails. Used by ``perception stream`` and ``perception demo``.

Every function draws on a copy of ``image`` and returns it, unless ``inplace=True`` (the stream
pipeline draws in place to save a copy per frame).
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from perception.core import Boxes2D, Boxes3D, Calibration, project_box_edges
from perception.viz.colors import GT_COLOR, box_colors, track_color
from perception.viz.text import box_text, pt, put_label

FRONT_EDGES = (3, 7, 8, 11)  # edges of the front face (corners 0, 3, 4, 7) in core.BOX_EDGES order


def draw_boxes3d(
    image: np.ndarray,
    boxes: Boxes3D,
    calib: Calibration,
    camera: str,
    class_names: tuple[str, ...] | None = None,
    *,
    color=None,
    thickness: int = 2,
    label: bool = True,
    show_scores: bool = True,
    inplace: bool = False,
) -> np.ndarray:
    """Draw ego-frame 3D boxes as wireframes in ``camera``'s image.

    The front face (the heading) is drawn thicker. Edges behind the camera are cut at the near
    plane by ``core.project_box_edges``; the rest is clipped to the image here.

    Args:
        image: (H, W, 3) uint8 BGR.
        boxes: boxes in the ego frame.
        calib: the frame's calibration (needs ``camera``'s intrinsics and extrinsics).
        camera: camera name, e.g. ``"image_2"`` or ``"CAM_FRONT"``.
        class_names: what ``boxes.labels`` index into, for the label text.
        color: one BGR colour for every box (e.g. ground truth), or None for class / track colours.
        label: write ``Car .87 #3`` above each visible box.
    """
    out = image if inplace else image.copy()
    if boxes is None or len(boxes) == 0:
        return out
    segments, visible = project_box_edges(boxes.xyz_lwh_yaw, calib, camera)
    h, w = out.shape[:2]
    ends, inside = clip_segments(segments.reshape(-1, 2, 2), w, h)
    inside = inside.reshape(visible.shape) & visible
    ends = ends.reshape(*visible.shape, 2, 2)
    colors = [color] * len(boxes) if color is not None else box_colors(boxes.labels, boxes.track_ids, class_names, True)
    order = np.argsort(-_depth(boxes, calib, camera))  # far boxes first, near boxes on top
    for i in order:
        for e in np.nonzero(inside[i])[0]:
            width = thickness + 1 if e in FRONT_EDGES else thickness
            cv2.line(out, pt(ends[i, e, 0]), pt(ends[i, e, 1]), colors[i], width, cv2.LINE_AA)
        if label and inside[i].any():
            top = ends[i][inside[i]].reshape(-1, 2)
            anchor = (int(top[:, 0].min()), int(top[:, 1].min()) - 2)
            put_label(out, box_text(boxes, i, class_names, show_scores), anchor, colors[i])
    return out


def draw_boxes2d(
    image: np.ndarray,
    boxes: Boxes2D,
    class_names: tuple[str, ...] | None = None,
    *,
    color=None,
    thickness: int = 2,
    label: bool = True,
    show_scores: bool = True,
    inplace: bool = False,
) -> np.ndarray:
    """Draw pixel boxes (x1, y1, x2, y2) with ``class score #track`` tags; colours as in ``draw_boxes3d``."""
    out = image if inplace else image.copy()
    if boxes is None or len(boxes) == 0:
        return out
    colors = [color] * len(boxes) if color is not None else box_colors(boxes.labels, boxes.track_ids, class_names, True)
    for i, (x1, y1, x2, y2) in enumerate(np.nan_to_num(boxes.xyxy)):
        cv2.rectangle(out, pt((x1, y1)), pt((x2, y2)), colors[i], thickness)  # axis-aligned: crisp, no AA
        if label:
            put_label(out, box_text(boxes, i, class_names, show_scores), pt((x1, y1 - 2)), colors[i])
    return out


def draw_trails(
    image: np.ndarray,
    trails: Mapping[int, np.ndarray],
    calib: Calibration,
    camera: str,
    *,
    thickness: int = 2,
    inplace: bool = False,
) -> np.ndarray:
    """Draw each track's past positions ((K, 3) ego-frame points, oldest first) projected into ``camera``."""
    pixel_trails = {}
    for track_id, xyz in trails.items():
        uv, depth = calib.project(np.asarray(xyz, dtype=np.float64)[:, :3], camera)
        pixel_trails[track_id] = np.where((depth > 0.5)[:, None], uv, np.nan)  # NaN: behind the camera
    return draw_pixel_trails(image, pixel_trails, thickness=thickness, inplace=inplace)


def draw_pixel_trails(
    image: np.ndarray, trails: Mapping[int, np.ndarray], *, thickness: int = 2, inplace: bool = False
) -> np.ndarray:
    """Draw (K, 2) pixel polylines per track id, oldest part faintest; NaN points break the line."""
    out = image if inplace else image.copy()
    h, w = out.shape[:2]
    for track_id, uv in trails.items():
        uv = np.asarray(uv, dtype=np.float64)[:, :2]
        if len(uv) < 2:
            continue
        ends, inside = clip_segments(np.stack([uv[:-1], uv[1:]], axis=1), w, h)
        base = track_color(int(track_id))
        for k in np.nonzero(inside)[0]:
            fade = 0.35 + 0.65 * (k + 1) / len(ends)
            cv2.line(out, pt(ends[k, 0]), pt(ends[k, 1]), tuple(int(c * fade) for c in base), thickness, cv2.LINE_AA)
    return out


def draw_ground_truth(image: np.ndarray, boxes: Boxes3D, calib: Calibration, camera: str, **kwargs) -> np.ndarray:
    """Ground-truth boxes in one green, thin and unlabelled, to sit under predictions."""
    return draw_boxes3d(image, boxes, calib, camera, color=GT_COLOR, thickness=1, label=False, **kwargs)


def clip_segments(segments: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip (M, 2, 2) pixel segments to the image rectangle (Liang-Barsky, vectorised).

    Returns:
        clipped: (M, 2, 2) float64 end points inside [0, width-1] x [0, height-1].
        inside: (M,) bool, False for segments wholly outside (or non-finite).
    """
    seg = np.asarray(segments, dtype=np.float64)
    p0, d = seg[:, 0], seg[:, 1] - seg[:, 0]
    lo, hi = np.zeros(len(seg)), np.ones(len(seg))
    inside = np.isfinite(seg).all(axis=(1, 2))
    bounds = ((0, 0.0), (0, width - 1.0), (1, 0.0), (1, height - 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, (axis, edge) in enumerate(bounds):
            p = -d[:, axis] if k % 2 == 0 else d[:, axis]
            q = p0[:, axis] - edge if k % 2 == 0 else edge - p0[:, axis]
            parallel = p == 0
            inside &= ~(parallel & (q < 0))
            t = q / p
            lo = np.where(~parallel & (p < 0), np.maximum(lo, t), lo)
            hi = np.where(~parallel & (p > 0), np.minimum(hi, t), hi)
    inside &= lo <= hi
    clipped = np.stack([p0 + lo[:, None] * d, p0 + hi[:, None] * d], axis=1)
    return np.where(inside[:, None, None], clipped, 0.0), inside


def _depth(boxes: Boxes3D, calib: Calibration, camera: str) -> np.ndarray:
    return calib.T(camera, "ego").apply(boxes.xyz.astype(np.float64))[:, 2]
