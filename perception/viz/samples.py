"""Pictures of the real dataset excerpts in ``../shared/data`` with their ground truth: camera
views with projected 3D boxes, BEV panels and off-screen 3D renders. Used by ``perception demo``;
a dataset whose files are absent (or that its loader cannot read from the excerpt) is skipped
with a logged reason."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from perception.core import Frame
from perception.errors import PerceptionError
from perception.files import atomic_path
from perception.viz.frame_view import BEV_ONLY_HEIGHT_PX, render_frame_view

log = logging.getLogger(__name__)

# name -> (dataset YAML in the repo's datasets/, its root under shared data, frames to draw, camera)
REAL_SAMPLES: dict[str, tuple[str, str, int, str | None]] = {
    "kitti": ("kitti.yaml", "kitti/object", 3, "image_2"),
    "nuscenes": ("nuscenes.yaml", "nuscenes", 1, "CAM_FRONT"),
    "argoverse2": ("argoverse2.yaml", "argoverse2/sensor", 1, None),
    "waymo": ("waymo.yaml", "waymo/v1_perception", 1, "FRONT"),
}
REPO_DATASETS = Path(__file__).resolve().parents[2] / "datasets"
SAMPLE_BEV_RANGE_M = (-30.0, 60.0, -45.0, 45.0)  # wider than the stream panel: full-surround datasets


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write a BGR image atomically; a clear error naming ``path`` if it cannot be written."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise PerceptionError("cannot write the image", path=path)
    return path


def render_sample(frame: Frame, camera: str | None = None, bev_range_m=SAMPLE_BEV_RANGE_M) -> np.ndarray:
    """Camera (with projected ground truth) beside a BEV panel; BEV alone for lidar-only frames."""
    if camera is not None and camera not in frame.images:
        camera = None
    image = render_frame_view(frame, camera=camera, show_gt=True, bev_range_m=bev_range_m)
    label = f"{frame.name}  ground truth: {0 if frame.boxes3d is None else len(frame.boxes3d)} boxes"
    cv2.putText(image, label, (8, image.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def render_real_samples(
    shared_data_dir: str | Path, out_dir: str | Path, datasets_dir: str | Path | None = None, render_3d: bool = True
) -> list[Path]:
    """Draw the ground truth of the real excerpts to PNGs in ``out_dir``.

    For each dataset of ``REAL_SAMPLES`` present under ``shared_data_dir``: ``<name>_<frame>.png``
    (camera + BEV) for its first frames, and ``<name>_<frame>_3d.png`` (open3d, off screen) for
    the first frame with lidar when ``render_3d``. ``datasets_dir`` holds the dataset YAMLs (default:
    the repository's ``datasets/``). Returns the written paths.
    """
    from perception.data.registry import load_dataset

    shared, out, written = Path(shared_data_dir), Path(out_dir), []
    datasets_dir = Path(datasets_dir) if datasets_dir is not None else REPO_DATASETS
    for name, (yaml_name, root, count, camera) in REAL_SAMPLES.items():
        if not (shared / root).exists():
            log.info("real samples: %s skipped (%s absent)", name, shared / root)
            continue
        try:
            dataset = load_dataset(datasets_dir / yaml_name, root=str((shared / root).resolve()))
            frames = [dataset.load_frame(i) for i in range(min(count, len(dataset)))]
        except PerceptionError as e:
            log.warning("real samples: %s skipped: %s", name, e)
            continue
        for frame in frames:
            stem = f"{name}_{frame.index:06d}"
            written.append(write_png(out / f"{stem}.png", render_sample(frame, camera)))
        with_points = [f for f in frames if f.points is not None]
        if render_3d and with_points:
            written.extend(_render_3d(with_points[0], out / f"{name}_{with_points[0].index:06d}_3d.png"))
    return written


def _render_3d(frame: Frame, path: Path) -> list[Path]:
    """The open3d picture, or nothing (logged) where off-screen rendering cannot work."""
    from perception.viz.open3d_view import OffscreenView, render_frame_3d

    try:
        view = OffscreenView(BEV_ONLY_HEIGHT_PX * 16 // 9, BEV_ONLY_HEIGHT_PX)
    except PerceptionError as e:
        log.warning("3D render of %s skipped: %s", frame.name, e)
        return []
    return [write_png(path, render_frame_3d(frame, view=view))]
