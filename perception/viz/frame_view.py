"""One picture per frame: the camera with projected 3D boxes, 2D boxes and track trails, and a
BEV panel of the same height beside it, plus an optional HUD. What ``perception stream`` writes
and ``perception demo`` saves."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from perception.core import Boxes2D, Boxes3D, Frame
from perception.viz.bev import render_bev
from perception.viz.overlay import draw_boxes2d, draw_boxes3d, draw_ground_truth, draw_pixel_trails, draw_trails
from perception.viz.text import draw_hud

PANEL_RANGE_M = (-10.0, 62.0, -36.0, 36.0)  # BEV panel: 62 m ahead, 36 m either side, 10 m behind
BEV_ONLY_HEIGHT_PX = 720


def pick_camera(frame: Frame, camera: str | None = None) -> str | None:
    """``camera`` if given, else the first calibrated camera with an image, else the first image."""
    if camera is not None:
        return camera
    calibrated = [c for c in frame.images if c in frame.calibration.cameras]
    return (calibrated or list(frame.images) or [None])[0]


def render_frame_view(
    frame: Frame,
    boxes3d: Boxes3D | None = None,
    boxes2d: Mapping[str, Boxes2D] | None = None,
    *,
    class_names: tuple[str, ...] | None = None,
    camera: str | None = None,
    show_gt: bool = False,
    trails3d: Mapping[int, np.ndarray] | None = None,
    trails2d: Mapping[int, np.ndarray] | None = None,
    bev: bool = True,
    bev_range_m: tuple[float, float, float, float] = PANEL_RANGE_M,
    hud_lines: list[str] | None = None,
    inplace: bool = False,
) -> np.ndarray:
    """Compose the view of one frame.

    Args:
        frame: the frame (its image of ``camera``, points, calibration, ground truth).
        boxes3d: predicted / tracked 3D boxes in the ego frame (projected into the camera and drawn in the BEV).
        boxes2d: camera name -> predicted / tracked 2D boxes.
        class_names: what labels index into (defaults to the frame's).
        camera: which image to draw on (default: ``pick_camera``).
        show_gt: also draw the frame's ground-truth 3D boxes: thin and green under ``boxes3d``, or
            in class colours with labels when ``boxes3d`` is None.
        trails3d: track id -> (K, 3) past centres in the current ego frame.
        trails2d: track id -> (K, 2) past pixel positions in ``camera``.
        bev: add the BEV panel when the frame has points or 3D boxes.
        hud_lines: text drawn top-left (FPS, latency...).
        inplace: draw on the frame's camera image itself (saves a copy when nothing else needs it).

    Returns:
        (H, W, 3) uint8 BGR: camera | BEV side by side (height of the camera image).
    """
    names = class_names or frame.class_names
    camera = pick_camera(frame, camera)
    gt = frame.boxes3d if show_gt else None
    if boxes3d is None and gt is not None:  # nothing predicted: ground truth is the picture, in class colours
        boxes3d, gt = gt.replace(track_ids=None), None
    panels = []
    if camera is not None and camera in frame.images:
        b2 = (boxes2d or {}).get(camera)
        panels.append(_camera_panel(frame, camera, boxes3d, b2, names, gt, trails3d, trails2d, inplace))
    if bev and (frame.points is not None or boxes3d is not None or gt is not None):
        height = panels[0].shape[0] if panels else BEV_ONLY_HEIGHT_PX
        px_per_m = height / (bev_range_m[1] - bev_range_m[0])
        panels.append(
            render_bev(frame.points, boxes3d, gt_boxes=gt, class_names=names, trails=trails3d, range_m=bev_range_m,
                       px_per_m=px_per_m)
        )  # fmt: skip
    if not panels:
        raise ValueError(f"frame {frame.name} has no image of {camera!r} and nothing for a BEV panel")
    view = panels[0] if len(panels) == 1 else _hstack(panels)
    return draw_hud(view, hud_lines or [])


def _camera_panel(frame, camera, boxes3d, boxes2d, names, gt, trails3d, trails2d, inplace) -> np.ndarray:
    img = frame.images[camera] if inplace else frame.images[camera].copy()
    calibrated = camera in frame.calibration.cameras
    if calibrated and gt is not None:
        draw_ground_truth(img, gt, frame.calibration, camera, inplace=True)
    if calibrated and trails3d:
        draw_trails(img, trails3d, frame.calibration, camera, inplace=True)
    if trails2d:
        draw_pixel_trails(img, trails2d, inplace=True)
    if calibrated and boxes3d is not None:
        draw_boxes3d(img, boxes3d, frame.calibration, camera, names, inplace=True)
    if boxes2d is not None:
        draw_boxes2d(img, boxes2d, names, inplace=True)
    return img


def _hstack(panels: list[np.ndarray]) -> np.ndarray:
    """Side by side with a 2-pixel dark separator (every panel already has the same height)."""
    sep = np.full((panels[0].shape[0], 2, 3), 60, np.uint8)
    parts = [panels[0]]
    for p in panels[1:]:
        parts += [sep, p]
    return np.concatenate(parts, axis=1)
