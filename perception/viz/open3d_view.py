"""The 3D viewer of ``perception view``: lidar points coloured by height, ground-truth boxes (green)
and predicted / tracked boxes (class or track colours, with a heading tick), in an open3d window or
rendered off screen to an image (Filament, on Vulkan/EGL software rendering when no GPU is there).

Labels (class, score, track id) are drawn after rendering, at the pixel where each box's top
projects through the renderer's own camera matrices, so they read crisply at any size.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from perception.core import BOX_EDGES, Boxes3D, Frame, box_corners
from perception.errors import MissingExtraError, PerceptionError
from perception.files import atomic_path
from perception.viz.colors import GT_COLOR, box_colors, ground_z_range, height_colormap
from perception.viz.text import box_text, put_label

# Chase camera in the ego frame: behind and above the car, looking ahead. Fixed in the ego frame,
# so over a sequence it follows the vehicle.
CHASE_EYE_M = (-14.0, 0.0, 11.0)
CHASE_CENTRE_M = (16.0, 0.0, 0.0)
BACKGROUND_RGBA = (0.07, 0.07, 0.08, 1.0)
EGO_COLOR = (235, 235, 235)
LABEL_RANGE_M = 40.0


def _open3d():
    try:
        import open3d
    except ImportError:  # pragma: no cover - open3d is a core dependency, but can be removed
        raise MissingExtraError("open3d", "viz") from None
    open3d.utility.set_verbosity_level(open3d.utility.VerbosityLevel.Error)  # quiet unless something is wrong
    return open3d


def _rgb(bgr) -> list[float]:
    return [bgr[2] / 255.0, bgr[1] / 255.0, bgr[0] / 255.0]


def points_geometry(points_xyz: np.ndarray, z_range_m: tuple[float, float] | None = None):
    """(N, 3+) ego-frame points -> an open3d PointCloud coloured by height (default range: ``ground_z_range``)."""
    o3d = _open3d()
    xyz = np.asarray(points_xyz, dtype=np.float64)[:, :3]
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    bgr = height_colormap(xyz[:, 2], *(z_range_m or ground_z_range(xyz[:, 2]))).astype(np.float64) / 255.0
    cloud.colors = o3d.utility.Vector3dVector(bgr[:, ::-1].copy())
    return cloud


def boxes_geometry(boxes: Boxes3D, colors: list) -> object:
    """Boxes -> one open3d LineSet: 12 edges per box plus a heading tick from the centre to the front face."""
    o3d = _open3d()
    corners = box_corners(boxes.xyz_lwh_yaw)  # (N, 8, 3)
    n = len(corners)
    centre = corners.mean(axis=1, keepdims=True)
    front = corners[:, [0, 3, 4, 7]].mean(axis=1, keepdims=True)
    verts = np.concatenate([corners, centre, front], axis=1).reshape(-1, 3)  # 10 vertices per box
    edges = np.concatenate([BOX_EDGES, [[8, 9]]])
    lines = (edges[None] + 10 * np.arange(n)[:, None, None]).reshape(-1, 2)
    line_set = o3d.geometry.LineSet(o3d.utility.Vector3dVector(verts), o3d.utility.Vector2iVector(lines))
    line_set.colors = o3d.utility.Vector3dVector(np.repeat([_rgb(c) for c in colors], len(edges), axis=0))
    return line_set


_RENDERER: dict[str, object] = {}  # the one live OffscreenRenderer: open3d aborts if two exist at once


def _shared_renderer(width: int, height: int):
    """The process's off-screen renderer of this size, replacing (and first freeing) one of another size."""
    cached = _RENDERER.get("renderer")
    if cached is not None and _RENDERER.get("size") == (width, height):
        return cached
    _RENDERER.clear()
    del cached
    gc.collect()  # the old renderer must be gone before a new one starts
    os.environ.setdefault("EGL_PLATFORM", "surfaceless")  # headless EGL when Vulkan is absent
    o3d = _open3d()
    try:
        renderer = o3d.visualization.rendering.OffscreenRenderer(width, height)
    except Exception as e:  # noqa: BLE001 - open3d raises plain RuntimeError for every failure
        raise PerceptionError(
            f"open3d cannot render off screen here ({e}); install mesa-vulkan-drivers or libegl1"
        ) from None
    renderer.scene.view.set_post_processing(False)  # no tone mapping: colours as given
    _RENDERER.update(renderer=renderer, size=(width, height))
    return renderer


def _ego_box(points_xyz: np.ndarray | None) -> Boxes3D:
    """A car-sized ego marker standing on the ground under the origin (estimated from the points)."""
    ground = (
        ground_z_range(np.asarray(points_xyz)[:, 2])[0] + 0.2 if points_xyz is not None and len(points_xyz) else -1.7
    )
    return Boxes3D(np.array([[0.0, 0.0, ground + 0.8, 4.5, 1.9, 1.6, 0.0]], np.float32), [0])


class OffscreenView:
    """Off-screen open3d rendering at ``width`` x ``height``; BGR uint8 images out.

    The renderer behind it is shared by the whole process (creating one costs about a second, and
    open3d cannot run two at once). In the ego frame the camera is the chase camera by default, so
    a sequence rendered frame by frame follows the car.
    """

    def __init__(self, width: int = 1280, height: int = 720, fov_deg: float = 60.0):
        self.width, self.height, self.fov_deg = width, height, fov_deg
        _shared_renderer(width, height)  # fail here, not at the first frame, when rendering cannot work
        o3d = _open3d()
        self._mat_points = o3d.visualization.rendering.MaterialRecord()
        self._mat_points.shader, self._mat_points.point_size = "defaultUnlit", 2.0
        self._mat_lines = o3d.visualization.rendering.MaterialRecord()
        self._mat_lines.shader, self._mat_lines.line_width = "unlitLine", 3.0

    @property
    def renderer(self):
        return _shared_renderer(self.width, self.height)

    def render(
        self,
        points_xyz: np.ndarray | None,
        boxes: Boxes3D | None = None,
        gt_boxes: Boxes3D | None = None,
        class_names: tuple[str, ...] | None = None,
        eye: tuple[float, float, float] = CHASE_EYE_M,
        centre: tuple[float, float, float] = CHASE_CENTRE_M,
        labels: bool = True,
    ) -> np.ndarray:
        """Render points and boxes (ego frame) seen from ``eye`` towards ``centre`` (metres, z up)."""
        renderer = self.renderer
        scene = renderer.scene
        scene.clear_geometry()
        scene.set_background(list(BACKGROUND_RGBA))
        if points_xyz is not None and len(points_xyz):
            scene.add_geometry("points", points_geometry(points_xyz), self._mat_points)
        if gt_boxes is not None and len(gt_boxes):
            scene.add_geometry("gt", boxes_geometry(gt_boxes, [GT_COLOR] * len(gt_boxes)), self._mat_lines)
        scene.add_geometry("ego", boxes_geometry(_ego_box(points_xyz), [EGO_COLOR]), self._mat_lines)
        colors = []
        if boxes is not None and len(boxes):
            colors = box_colors(boxes.labels, boxes.track_ids, class_names, by_track=True)
            scene.add_geometry("boxes", boxes_geometry(boxes, colors), self._mat_lines)
        renderer.setup_camera(self.fov_deg, list(centre), list(eye), [0.0, 0.0, 1.0])
        rgb = np.asarray(renderer.render_to_image())
        image = np.ascontiguousarray(rgb[..., ::-1])
        if labels and colors:
            self._draw_labels(image, boxes, class_names, colors)
        return image

    def project(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) ego-frame points -> (N, 2) pixels through the current camera, and (N,) in-front mask."""
        cam = self.renderer.scene.camera
        view, proj = np.asarray(cam.get_view_matrix()), np.asarray(cam.get_projection_matrix())
        homo = np.concatenate([np.asarray(xyz, dtype=np.float64), np.ones((len(xyz), 1))], axis=1)
        clip = homo @ (proj @ view).T
        w = clip[:, 3:4]
        with np.errstate(divide="ignore", invalid="ignore"):
            ndc = clip[:, :2] / w
        uv = np.stack([(ndc[:, 0] + 1) / 2 * self.width, (1 - ndc[:, 1]) / 2 * self.height], axis=1)
        return uv, w[:, 0] > 0

    def _draw_labels(self, image: np.ndarray, boxes: Boxes3D, class_names, colors) -> None:
        """Tags over the boxes within ``LABEL_RANGE_M`` (farther ones would pile up near the horizon)."""
        tops = boxes.xyz.astype(np.float64) + np.outer(boxes.lwh[:, 2] / 2 + 0.3, [0.0, 0.0, 1.0])
        uv, ok = self.project(tops)
        ok &= np.linalg.norm(boxes.xyz[:, :2], axis=1) < LABEL_RANGE_M
        for i in np.nonzero(ok)[0]:
            if 0 <= uv[i, 0] < self.width and 0 <= uv[i, 1] < self.height:
                text = box_text(boxes, int(i), class_names, compact=False)
                put_label(image, text, (int(uv[i, 0]) - 10, int(uv[i, 1])), colors[i], scale=0.45)


def render_frame_3d(
    frame: Frame, boxes: Boxes3D | None = None, *, view: OffscreenView | None = None, show_gt: bool = True, **kwargs
) -> np.ndarray:
    """Off-screen picture of one frame: its points, its ground truth (green under predictions, or in
    class colours alone), and ``boxes``. Pass a reused ``view`` when rendering many frames."""
    view = view or OffscreenView()
    gt = frame.boxes3d if show_gt else None
    if boxes is None and gt is not None:  # ground truth alone: class colours and names
        boxes, gt = gt.replace(track_ids=None), None
    points = frame.points.xyz if frame.points is not None else None
    return view.render(points, boxes, gt, frame.class_names, **kwargs)


def save_ply(frame: Frame, path: str | Path, boxes: Boxes3D | None = None) -> list[Path]:
    """Write the frame's coloured points to ``path`` (.ply) and its boxes (``boxes`` or the ground
    truth) as a line set to ``<stem>_boxes.ply``. Returns the written paths."""
    o3d = _open3d()
    path = Path(path)
    written = []
    if frame.points is not None:
        with atomic_path(path) as tmp:
            if not o3d.io.write_point_cloud(str(tmp), points_geometry(frame.points.xyz)):
                raise PerceptionError("open3d could not write the point cloud", path=path)
        written.append(path)
    boxes = boxes if boxes is not None else frame.boxes3d
    if boxes is not None and len(boxes):
        box_path = path.with_name(f"{path.stem}_boxes.ply")
        colors = box_colors(boxes.labels, boxes.track_ids, frame.class_names, by_track=True)
        with atomic_path(box_path) as tmp:
            if not o3d.io.write_line_set(str(tmp), boxes_geometry(boxes, colors)):
                raise PerceptionError("open3d could not write the boxes", path=box_path)
        written.append(box_path)
    return written


def show_window(frame: Frame, boxes: Boxes3D | None = None) -> None:
    """Open an interactive open3d window (needs a display) with points, ground truth and boxes."""
    o3d = _open3d()
    geometries = []
    if frame.points is not None:
        geometries.append(points_geometry(frame.points.xyz))
    if frame.boxes3d is not None and len(frame.boxes3d):
        colors = (
            [GT_COLOR] * len(frame.boxes3d)
            if boxes is not None
            else box_colors(frame.boxes3d.labels, None, frame.class_names, False)
        )
        geometries.append(boxes_geometry(frame.boxes3d, colors))
    if boxes is not None and len(boxes):
        geometries.append(boxes_geometry(boxes, box_colors(boxes.labels, boxes.track_ids, frame.class_names, True)))
    o3d.visualization.draw_geometries(geometries, window_name=f"perception view {frame.name}")


def render_sequence_video(
    frames: Iterable[tuple[Frame, Boxes3D | None]],
    out_path: str | Path,
    fps: float = 10.0,
    width: int = 1280,
    height: int = 720,
) -> Path:
    """Render ``(frame, boxes)`` pairs off screen into an MP4 with the chase camera following the car.
    The file is finalised even if rendering stops on an error."""
    from perception.stream.sinks import VideoSink

    view = OffscreenView(width, height)
    sink = VideoSink(out_path, fps)
    try:
        for frame, boxes in frames:
            image = render_frame_3d(frame, boxes, view=view)
            put_label(image, frame.name, (8, 24), (40, 40, 40), scale=0.55)
            sink.write(image, {})
    finally:
        written = sink.close()
    if written is None:
        raise PerceptionError("no frames to render", path=out_path)
    return written
