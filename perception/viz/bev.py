"""Bird's-eye-view raster: points coloured by height, boxes with a heading tick, track ids and
trails, range rings and the ego vehicle. Used by ``perception stream`` and ``perception demo``.

Image axes: up is ego +x (forward), left is ego +y (left), so the picture reads like a map seen
from above with the car driving up the page.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from perception.core import Boxes3D, Frame, PointCloud, bev_corners
from perception.viz.colors import GT_COLOR, box_colors, class_color, ground_z_range, height_colormap, track_color
from perception.viz.text import box_text, pt, put_label, text_size

DEFAULT_RANGE_M = (-20.0, 60.0, -40.0, 40.0)  # x_min, x_max, y_min, y_max in the ego frame
BACKGROUND_GREY = 22


class BevGrid:
    """Maps ego-frame metres to BEV pixels for one ``range_m`` and ``px_per_m``."""

    def __init__(self, range_m: tuple[float, float, float, float] = DEFAULT_RANGE_M, px_per_m: float = 10.0):
        self.x_min, self.x_max, self.y_min, self.y_max = (float(v) for v in range_m)
        self.px_per_m = float(px_per_m)
        self.width = round((self.y_max - self.y_min) * px_per_m)
        self.height = round((self.x_max - self.x_min) * px_per_m)

    def to_px(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) ego x, y in metres -> (..., 2) float pixel (u, v)."""
        xy = np.asarray(xy, dtype=np.float64)
        u = (self.y_max - xy[..., 1]) * self.px_per_m
        v = (self.x_max - xy[..., 0]) * self.px_per_m
        return np.stack([u, v], axis=-1)


def render_bev(
    source: Frame | PointCloud | np.ndarray | None,
    boxes: Boxes3D | None = None,
    *,
    gt_boxes: Boxes3D | None = None,
    class_names: tuple[str, ...] | None = None,
    trails: Mapping[int, np.ndarray] | None = None,
    range_m: tuple[float, float, float, float] = DEFAULT_RANGE_M,
    px_per_m: float = 10.0,
    z_range_m: tuple[float, float] | None = None,
    point_size_px: int = 1,
    show_scores: bool = True,
) -> np.ndarray:
    """Draw a bird's-eye view.

    Args:
        source: a Frame (its points; its ground truth becomes ``boxes`` when ``boxes`` is None),
            a PointCloud, an (N, 3+) array of ego-frame points, or None for boxes only.
        boxes: the boxes to draw in colour (by track id when they have ids, else by class).
        gt_boxes: ground truth drawn thin in green under ``boxes`` (e.g. beside predictions).
        class_names: what box labels index into (defaults to the frame's).
        trails: track id -> (K, 2+) past centres in the current ego frame, oldest first.
        range_m: (x_min, x_max, y_min, y_max) metres in the ego frame.
        px_per_m: resolution; the image is (x range * px_per_m) rows by (y range * px_per_m) columns.
        z_range_m: heights mapped to the ends of the colour ramp (default: from the ground up, ``ground_z_range``).
        point_size_px: 1 draws single pixels; 2 or more draws squares (for sparse clouds).

    Returns:
        (H, W, 3) uint8 BGR image.
    """
    points = source
    if isinstance(source, Frame):
        points, class_names = source.points, class_names or source.class_names
        boxes = source.boxes3d if boxes is None else boxes
    if isinstance(points, PointCloud):
        points = points.xyz
    grid = BevGrid(range_m, px_per_m)
    img = np.full((grid.height, grid.width, 3), BACKGROUND_GREY, np.uint8)  # a scalar fill is a memset: 20x faster
    _draw_rings(img, grid)
    if points is not None and len(points):
        _draw_points(img, grid, np.asarray(points)[:, :3], z_range_m, point_size_px)
    for track_id, xy in (trails or {}).items():
        _draw_trail(img, grid, int(track_id), np.asarray(xy))
    if gt_boxes is not None and len(gt_boxes):
        _draw_boxes(img, grid, gt_boxes, class_names, colors=[GT_COLOR] * len(gt_boxes), thickness=1, label=False)
    if boxes is not None and len(boxes):
        colors = box_colors(boxes.labels, boxes.track_ids, class_names, by_track=True)
        _draw_boxes(img, grid, boxes, class_names, colors=colors, thickness=2, label=True, show_scores=show_scores)
        if boxes.track_ids is None:
            _draw_legend(img, boxes.labels, class_names)
    _draw_ego(img, grid)
    return img


def _draw_rings(img: np.ndarray, grid: BevGrid) -> None:
    """Range rings every 10 m around the ego, labelled, plus the ego's forward and lateral axes."""
    centre = tuple(round(c) for c in grid.to_px(np.zeros(2)))
    far = max(abs(grid.x_min), abs(grid.x_max), abs(grid.y_min), abs(grid.y_max))
    for r in range(10, int(far * 1.5) + 1, 10):
        radius = round(r * grid.px_per_m)
        cv2.circle(img, centre, radius, (48, 48, 48), 1, cv2.LINE_AA)
        label_px = grid.to_px(np.array([r, 0.0]))
        if 0 <= label_px[1] < grid.height - 4:
            cv2.putText(
                img,
                f"{r}m",
                (centre[0] + 3, int(label_px[1]) - 3),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.35,
                (90, 90, 90),
                1,
                cv2.LINE_AA,
            )
    cv2.line(img, (centre[0], 0), (centre[0], grid.height), (40, 40, 40), 1)
    cv2.line(img, (0, centre[1]), (grid.width, centre[1]), (40, 40, 40), 1)


def _draw_points(
    img: np.ndarray, grid: BevGrid, xyz: np.ndarray, z_range_m: tuple[float, float] | None, size: int
) -> None:
    """Colour each pixel by the highest point that falls in it, so obstacles stay visible over the ground."""
    x, y, z = (np.asarray(xyz[:, k], dtype=np.float32) for k in range(3))
    z_range_m = z_range_m or ground_z_range(z)
    u = ((grid.y_max - y) * grid.px_per_m).astype(np.int32)
    v = ((grid.x_max - x) * grid.px_per_m).astype(np.int32)
    keep = (u >= 0) & (u < grid.width) & (v >= 0) & (v < grid.height)
    flat, z = v[keep] * grid.width + u[keep], z[keep]
    top = np.full(grid.height * grid.width, -np.inf, np.float32)
    np.maximum.at(top, flat, z)
    hit = np.isfinite(top).reshape(grid.height, grid.width)
    if size > 1:
        hit_grown = cv2.dilate(hit.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
        top = cv2.dilate(
            np.where(hit, top.reshape(hit.shape), -1e9).astype(np.float32), np.ones((size, size), np.uint8)
        )
        hit, top = hit_grown, top.ravel()
    idx = np.flatnonzero(hit)
    img.reshape(-1, 3)[idx] = height_colormap(top.reshape(-1)[idx], *z_range_m)


def _draw_boxes(img, grid, boxes: Boxes3D, class_names, *, colors, thickness, label, show_scores=True) -> None:
    corners_px = grid.to_px(bev_corners(boxes.xyz_lwh_yaw))  # (N, 4, 2)
    for i, (poly, color) in enumerate(zip(corners_px, colors)):
        pts = np.round(poly).astype(np.int32)
        cv2.polylines(img, [pts], True, color, thickness, cv2.LINE_AA)
        centre = poly.mean(axis=0)
        front = (poly[0] + poly[3]) / 2  # corners 0 and 3 bound the front face
        cv2.line(img, pt(centre), pt(front), color, thickness, cv2.LINE_AA)
        if label and boxes.track_ids is not None and boxes.track_ids[i] >= 0:  # untracked: the legend names colours
            anchor = (poly[:, 0].max() + 3, poly[:, 1].min() + 6)  # right of the box, so the tag never hides it
            put_label(img, box_text(boxes, i, class_names, show_scores, compact=True), pt(anchor), color, scale=0.4)


def _draw_legend(img: np.ndarray, labels: np.ndarray, class_names) -> None:
    """Top-right: a colour swatch and the name of every class present, most frequent first."""
    values, counts = np.unique(labels, return_counts=True)
    y = 14
    for label in values[np.argsort(-counts, kind="stable")][:12]:
        name = class_names[label] if class_names is not None and label < len(class_names) else str(label)
        text = f"{name} {counts[values == label][0]}"
        tw = text_size(text, 0.4)[0]
        x = img.shape[1] - tw - 24
        cv2.rectangle(img, (x, y - 9), (x + 10, y + 1), class_color(int(label), class_names), -1)
        cv2.putText(img, text, (x + 15, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (220, 220, 220), 1, cv2.LINE_AA)
        y += 16


def _draw_trail(img: np.ndarray, grid: BevGrid, track_id: int, xy: np.ndarray) -> None:
    if len(xy) < 2:
        return
    pts = np.round(grid.to_px(xy[:, :2])).astype(np.int32)
    color = track_color(track_id)
    for k in range(1, len(pts)):
        fade = 0.3 + 0.7 * k / (len(pts) - 1)  # older parts fainter
        cv2.line(img, tuple(pts[k - 1]), tuple(pts[k]), tuple(int(c * fade) for c in color), 1, cv2.LINE_AA)


def _draw_ego(img: np.ndarray, grid: BevGrid) -> None:
    """The ego vehicle as a 4.5 x 1.9 m white outline with a filled heading triangle."""
    ego = np.array([[2.3, 0.95], [-2.2, 0.95], [-2.2, -0.95], [2.3, -0.95]])
    cv2.polylines(img, [np.round(grid.to_px(ego)).astype(np.int32)], True, (235, 235, 235), 1, cv2.LINE_AA)
    nose = np.array([[2.3, 0.0], [1.0, 0.7], [1.0, -0.7]])
    cv2.fillPoly(img, [np.round(grid.to_px(nose)).astype(np.int32)], (235, 235, 235), cv2.LINE_AA)
