"""Camera of the synthetic dataset: renders the scene, and measures what each box shows in the image.

Rendering is a painter's algorithm over shaded box faces (buildings, then actor parts far to
near) on a background computed once per scenario: sky, and per pixel the road coordinates of the
ground it sees (the ego keeps its lane and heading along the road, so that map never changes;
only the dashed lines move with the ego's progress). Frames: ego x fwd, y left, z up; camera
x right, y down, z forward; pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from perception.core import SE3, box_corners, project_box_edges
from perception.data.synthetic_scene import (
    DASH_LENGTH_M,
    DASH_PERIOD_M,
    LIDAR_HEIGHT_M,
    Road,
    paint_coverage,
    surface_zone,
)

NEAR_M = 0.1
# Box faces as corner indices of perception.core.box_corners; vertical faces list the bottom edge first.
_FACES = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [0, 3, 7, 4], [2, 1, 5, 6], [1, 0, 4, 5], [3, 2, 6, 7]])
_FACE_NORMALS = np.array([[0, 0, -1], [0, 0, 1], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=np.float64)
_ZONE_BGR = np.array([[88, 88, 92], [100, 100, 104], [165, 168, 172], [70, 120, 95]], dtype=np.float64)
_SKY_TOP, _SKY_HORIZON = np.array([205, 150, 95.0]), np.array([235, 222, 210.0])
_PAINT_BGR, _YELLOW_BGR = np.array([225, 225, 225.0]), np.array([40, 190, 230.0])
_WINDOW_BGR = (105, 80, 62)
_FOG_M = 300.0
_UNIT_CIRCLE = np.stack([np.cos(np.arange(12) * np.pi / 6), np.sin(np.arange(12) * np.pi / 6)], axis=1)


class CameraRenderer:
    """Renders one camera of one scenario (see module docstring).

    Args:
        K: (3, 3) intrinsics; width, height: image size in pixels.
        T_cam_from_ego: extrinsics.
        road: the scenario's road; ``T_road_from_ego0``: the ego's road-frame pose at s = 0.
        rng: fixes the asphalt texture and the sensor noise pattern.
    """

    def __init__(self, K: np.ndarray, width: int, height: int, T_cam_from_ego: SE3, road: Road,
                 T_road_from_ego0: SE3, rng: np.random.Generator):  # fmt: skip
        self.K, self.width, self.height = K, width, height
        self.T_cam_from_ego = T_cam_from_ego
        self._background, self._dash_index, self._dash_s = self._make_background(road, T_road_from_ego0, rng)
        self._noise = rng.normal(0.0, 4.0, (height + 32, width + 32, 3)).astype(np.int16)
        self._exposure = np.diag(rng.uniform(0.8, 1.1) * (1.0 + rng.normal(0.0, 0.03, 3)))  # per-drive light

    def _make_background(self, road: Road, T_road_from_ego0: SE3, rng: np.random.Generator) -> tuple:
        """Sky + ground image (H, W, 3) uint8, and the pixels of dashed lines with their road s."""
        v, u = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        rays_cam = np.stack([u + 0.5, v + 0.5, np.ones_like(u)], axis=-1) @ np.linalg.inv(self.K).T
        T_ego_from_cam = self.T_cam_from_ego.inverse()
        rays = rays_cam @ T_ego_from_cam.rotation.T
        origin = T_ego_from_cam.translation
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(rays[..., 2] < -1e-6, (-LIDAR_HEIGHT_M - origin[2]) / rays[..., 2], np.inf)
        ground = np.isfinite(t) & (t < 2000)
        hit = origin + rays * np.where(ground, t, 0.0)[..., None]
        xy_road = T_road_from_ego0.apply(hit.reshape(-1, 3))[:, :2]
        s, d = (a.reshape(self.height, self.width) for a in road.to_sd(xy_road))
        dist = np.where(ground, t * np.linalg.norm(rays, axis=-1), np.inf)
        pixel_m = np.abs(np.gradient(d, axis=1)) + np.abs(np.gradient(d, axis=0)) + 1e-3
        solid = paint_coverage(s + DASH_LENGTH_M / 2, d, pixel_m)  # dashes start on; moved per frame
        colour = _ZONE_BGR[surface_zone(d)] + rng.normal(0, 5, (self.height, self.width, 1))
        paint = np.where((np.abs(d) < 0.3)[..., None], _YELLOW_BGR, _PAINT_BGR)
        dashed = ground & (np.abs(np.abs(d) - 3.5) < 0.3)
        colour = np.where(dashed[..., None], colour, colour + solid[..., None] * (paint - colour))
        fog = (1.0 - np.exp(-np.where(ground, dist, np.inf) / _FOG_M))[..., None]
        elev = np.clip(-rays[..., 2] / np.linalg.norm(rays, axis=-1), -1, 0)[..., None] * -3.0
        sky = _SKY_HORIZON + np.clip(elev, 0, 1) * (_SKY_TOP - _SKY_HORIZON)
        image = np.where(ground[..., None], colour + fog * (_SKY_HORIZON - colour), sky)
        self._dash_cover = paint_coverage(np.zeros(dashed.sum()), d[dashed], pixel_m[dashed])
        self._dash_base = image[dashed]
        return np.clip(image, 0, 255).astype(np.uint8), np.flatnonzero(dashed), s[dashed]

    def background(self, s_ego: float) -> np.ndarray:
        """A fresh copy of the background with the dashed lines placed for an ego at ``s_ego``."""
        image = self._background.copy()
        on = ((self._dash_s + s_ego) % DASH_PERIOD_M) < DASH_LENGTH_M
        c = (self._dash_cover * on)[:, None]
        image.reshape(-1, 3)[self._dash_index] = np.clip(self._dash_base + c * (_PAINT_BGR - self._dash_base), 0, 255)
        return image

    def draw_boxes(self, image: np.ndarray, boxes: np.ndarray, colours: np.ndarray, sun_ego: np.ndarray,
                   group: np.ndarray, bias_m: np.ndarray | None = None, windows: np.ndarray | None = None,
                   discs: np.ndarray | None = None) -> None:  # fmt: skip
        """Paint shaded boxes (K, 7) (ego frame), colours (K, 3) BGR in [0, 1].

        Painter's order: groups (one per actor or building, ``group`` (K,) ints) far to near, then
        within a group faces far to near, a face's distance reduced by its box's ``bias_m`` (K,) so
        that decals (lights) lying on a bigger face are painted after it. Walls of boxes flagged in
        ``windows`` (K,) get a grid of windows; boxes with ``discs`` (K,) > 0 are drawn as the wheel
        inscribed in their side (a tyre and a hub), seen only from the left (1), right (2) or both (3).
        """
        if len(boxes) == 0:
            return
        discs = np.zeros(len(boxes), np.int64) if discs is None else discs
        quads, bgr, k_all, f_all = self._visible_faces(boxes, colours, sun_ego, discs)
        face_depth = np.linalg.norm(quads[k_all, f_all].mean(axis=1), axis=1)
        if bias_m is not None:
            face_depth = face_depth - bias_m[k_all]
        group_depth = np.full(group.max() + 1, -np.inf)
        np.maximum.at(group_depth, group[k_all], face_depth)
        order = np.lexsort((-face_depth, -group_depth[group[k_all]]))
        clipped = (quads[..., 2] < NEAR_M).any(-1)
        uvw = quads @ self.K.T
        fixed = np.round(uvw[..., :2] / np.maximum(uvw[..., 2:3], NEAR_M) * 16).astype(np.int32)
        wheel_index = np.cumsum(discs > 0) - 1
        wheels, hubs = self._wheels(boxes[discs > 0])
        for k, f in zip(k_all[order], f_all[order]):
            colour = tuple(bgr[k, f].tolist())
            if discs[k] > 0:
                w = wheel_index[k]
                cv2.fillConvexPoly(image, wheels[w, 0], colour, cv2.LINE_AA, 4)
                if hubs[w]:
                    cv2.fillConvexPoly(image, wheels[w, 1], (150, 150, 150), cv2.LINE_AA, 4)
            elif clipped[k, f]:
                self._fill(image, quads[k, f], colour)
            else:
                cv2.fillConvexPoly(image, fixed[k, f], colour, cv2.LINE_AA, 4)
            if windows is not None and windows[k] and f >= 2:
                self._windows(image, quads[k, f])

    def _visible_faces(self, boxes: np.ndarray, colours: np.ndarray, sun_ego: np.ndarray, discs: np.ndarray) -> tuple:
        """Camera-frame face quads (K, 6, 4, 3), shaded colours (K, 6, 3) 0..255, and the (box, face)
        indices of faces that face the camera, lie in view and cover at least half a pixel (a disc
        keeps the one side it shows)."""
        quads = self.T_cam_from_ego.apply(box_corners(boxes).reshape(-1, 3)).reshape(-1, 8, 3)[:, _FACES]
        c, s = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
        n = _FACE_NORMALS[None]
        n = np.stack(
            [
                c * n[..., 0] - s * n[..., 1],
                s * n[..., 0] + c * n[..., 1],
                np.broadcast_to(n[..., 2], c.shape[:1] + (6,)),
            ],
            -1,
        )
        shade = 0.45 + 0.55 * np.clip(n @ sun_ego, 0, 1) + 0.1 * n[..., 2]
        facing = (quads.mean(axis=2) * (n @ self.T_cam_from_ego.rotation.T)).sum(-1) < 0
        sides = np.stack([np.zeros_like(discs, bool)] * 4 + [discs % 2 == 1, discs >= 2], axis=1)
        facing[discs > 0] &= sides[discs > 0]  # a wheel shows its outer side only
        visible = facing & (quads[..., 2] > NEAR_M).any(-1) & self._in_view(quads)
        uvw = quads @ self.K.T
        uv = uvw[..., :2] / np.maximum(uvw[..., 2:3], NEAR_M)
        x, y = uv[..., 0], uv[..., 1]
        area = np.abs((x * np.roll(y, -1, -1) - np.roll(x, -1, -1) * y).sum(-1)) / 2
        k_all, f_all = np.nonzero(visible & ((area > 0.5) | (quads[..., 2] < NEAR_M).any(-1)))
        return quads, np.clip(colours[:, None, :] * shade[..., None] * 255, 0, 255), k_all, f_all

    def _wheels(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fixed-point pixel 12-gons (W, 2, 12, 2) of the tyre (radius min(l, h) / 2 in the box's x-z
        plane) and the hub of each wheel box (W, 7), and (W,) whether the hub is big enough to draw."""
        axis = np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6]), np.zeros(len(boxes))], axis=1)
        radius = np.minimum(boxes[:, 3], boxes[:, 5])[:, None] / 2 * np.array([1.0, 0.35])  # (W, 2) tyre, hub
        cos, sin = _UNIT_CIRCLE[None, :, :1], _UNIT_CIRCLE[None, :, 1:]
        ring = cos * axis[:, None, :] + sin * np.array([0.0, 0.0, 1.0])  # (W, 12, 3)
        pts = boxes[:, None, None, :3] + radius[:, :, None, None] * ring[:, None]  # (W, 2, 12, 3)
        cam = self.T_cam_from_ego.apply(pts.reshape(-1, 3)).reshape(pts.shape) @ self.K.T
        uv = cam[..., :2] / np.maximum(cam[..., 2:3], NEAR_M)
        big = np.ptp(uv[:, 1, :, 0], axis=1) > 3.0
        return np.round(uv * 16).astype(np.int32), big & (cam[..., 2] > NEAR_M).all(axis=(1, 2))

    def _in_view(self, quads: np.ndarray) -> np.ndarray:
        """(K, 6) False for faces wholly left/right/above/below the image (a cheap, safe cull)."""
        z = np.maximum(quads[..., 2], NEAR_M)
        u = (quads[..., 0] * self.K[0, 0]) / z + self.K[0, 2]
        v = (quads[..., 1] * self.K[1, 1]) / z + self.K[1, 2]
        behind = (quads[..., 2] < NEAR_M).any(-1)
        inside = ~((u < 0).all(-1) | (u > self.width).all(-1) | (v < 0).all(-1) | (v > self.height).all(-1))
        return inside | behind

    def _fill(self, image: np.ndarray, poly_cam: np.ndarray, bgr: tuple) -> None:
        poly = clip_near(poly_cam)
        if len(poly) < 3:
            return
        uv = poly @ self.K.T
        uv = uv[:, :2] / uv[:, 2:3]
        cv2.fillConvexPoly(image, np.round(uv * 16).astype(np.int32), bgr, cv2.LINE_AA, 4)

    def _windows(self, image: np.ndarray, quad: np.ndarray) -> None:
        """A grid of windows (1.4 x 1.6 m every 3 x 3.2 m) on a vertical face (bottom edge first)."""
        along, up = quad[1] - quad[0], quad[3] - quad[0]
        length, height = np.linalg.norm(along), np.linalg.norm(up)
        if quad[:, 2].min() < 2.0 or quad[:, 2].min() > 90.0:
            return
        cols, rows = int((length - 1.0) // 3.0), int((height - 2.0) // 3.2)
        if cols < 1 or rows < 1:
            return
        a0 = (length - 3.0 * cols) / 2 + 0.8 + 3.0 * np.arange(cols)
        z0 = 1.2 + 3.2 * np.arange(rows)
        ea, eu = along / length, up / height
        corners = np.array([[0, 0], [1.4, 0], [1.4, 1.6], [0, 1.6]])
        a, z = np.meshgrid(a0, z0)
        pts = quad[0] + (a.reshape(-1, 1, 1) + corners[:, :1]) * ea + (z.reshape(-1, 1, 1) + corners[:, 1:]) * eu
        pts = pts[(pts[..., 2] > NEAR_M).all(-1)]
        uvw = pts @ self.K.T
        polys = np.round(uvw[..., :2] / uvw[..., 2:3] * 16).astype(np.int32)
        cv2.fillPoly(image, list(polys), _WINDOW_BGR, cv2.LINE_AA, 4)

    def add_noise(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Exposure of the drive, then sensor noise: a shifted window of a fixed noise texture (cheap,
        still different in every frame)."""
        dy, dx = rng.integers(0, 32, 2)
        noise = self._noise[dy : dy + self.height, dx : dx + self.width]
        exposed = cv2.transform(image, self._exposure).astype(np.int16)
        return np.clip(exposed + noise, 0, 255).astype(np.uint8)


def clip_near(poly: np.ndarray, near: float = NEAR_M) -> np.ndarray:
    """Clip a convex polygon (P, 3) in camera coordinates to ``z >= near``."""
    return _clip_half_plane(poly, 2, near, keep_below=False)


def _clip_half_plane(poly: np.ndarray, axis: int, bound: float, keep_below: bool) -> np.ndarray:
    """Sutherland-Hodgman: keep the part of convex ``poly`` (P, D) with ``poly[:, axis]`` on one side of ``bound``."""
    inside = poly[:, axis] <= bound if keep_below else poly[:, axis] >= bound
    if inside.all():
        return poly
    out = []
    for i in range(len(poly)):
        a, b = poly[i], poly[(i + 1) % len(poly)]
        if inside[i]:
            out.append(a)
        if inside[i] != inside[(i + 1) % len(poly)]:
            out.append(a + (bound - a[axis]) / (b[axis] - a[axis]) * (b - a))
    return np.array(out).reshape(-1, poly.shape[1])


def box_visibility(boxes: np.ndarray, calib, camera: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What each box (N, 7) (ego frame) shows in ``camera``, as KITTI annotates it.

    Each box covers the convex hull of its projected (near-plane clipped) edges; boxes are
    painted into an id buffer far to near, so nearer boxes hide farther ones.

    Returns:
        truncated: (N,) float64 fraction of the hull's area outside the image (1 when wholly out).
        visible: (N,) float64 fraction of the hull's in-image pixels that no nearer box hides.
        hull_px: (N,) int64 in-image pixels of the hull (0 when outside the image).
    """
    intr = calib.cameras[camera]
    n = len(boxes)
    truncated, visible, hull_px = np.ones(n), np.zeros(n), np.zeros(n, np.int64)
    if n == 0:
        return truncated, visible, hull_px
    segments, seen = project_box_edges(boxes, calib, camera)
    depth = np.linalg.norm(calib.T(camera, "ego").apply(boxes[:, :3].astype(np.float64)), axis=1)
    ids = np.zeros((intr.height, intr.width), np.uint16)
    hulls = {}
    for k in np.argsort(-depth):
        if not seen[k].any():
            continue
        pts = segments[k][seen[k]].reshape(-1, 2).astype(np.float32)
        hull = cv2.convexHull(np.clip(pts, -1e5, 1e5))[:, 0]
        area = cv2.contourArea(hull)
        inside = _clip_rect(hull.astype(np.float64), intr.width, intr.height)
        area_in = cv2.contourArea(inside.astype(np.float32)) if len(inside) >= 3 else 0.0
        truncated[k] = 1.0 - area_in / area if area > 1e-6 else 1.0
        if area_in > 0:
            poly = np.round(inside * 16).astype(np.int32)
            cv2.fillConvexPoly(ids, poly, int(k) + 1, cv2.LINE_8, 4)
            hulls[k] = poly
    counts = np.bincount(ids.ravel(), minlength=n + 1)[1:]
    for k, poly in hulls.items():
        x0, y0 = np.maximum((poly.min(axis=0) >> 4) - 1, 0)
        x1, y1 = np.minimum((poly.max(axis=0) >> 4) + 2, [intr.width, intr.height])
        patch = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(patch, poly - np.array([x0, y0]) * 16, 1, cv2.LINE_8, 4)
        hull_px[k] = int(patch.sum())
        visible[k] = counts[k] / hull_px[k] if hull_px[k] else 0.0
    return truncated, visible, hull_px


def _clip_rect(poly: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip a convex polygon (P, 2) to the image rectangle [0, width] x [0, height]."""
    if poly.min() >= 0 and (poly[:, 0] <= width).all() and (poly[:, 1] <= height).all():
        return poly
    for axis, bound, keep_below in ((0, 0.0, False), (0, width, True), (1, 0.0, False), (1, height, True)):
        if len(poly) == 0:
            break
        poly = _clip_half_plane(poly, axis, bound, keep_below)
    return poly
