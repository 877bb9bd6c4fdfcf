"""Any ``DriveDataset`` -> the YOLO (ultralytics) layout: images, one label file per image, a data YAML.

``perception data convert --from datasets/kitti.yaml --to yolo --out yolo/kitti`` writes::

    out/images/<split>/<seq>_<index>_<camera>.<ext>   linked to the source image when the loader
                                                      can name it (``image_path``), else written (PNG)
    out/labels/<split>/<same stem>.txt                "class cx cy w h" per box, normalised to [0, 1]
    out/data.yaml                                     path, train, val, names (the dataset YAML's classes)

Boxes come from the frame's 2D labels for that camera, or, for cameras without 2D labels, from
the 3D boxes projected into the image (clipped to it). Converting a second split into the same
folder adds it; ``train``/``val`` in the data YAML point at the ``train``/``val`` splits when they
exist, else at the one converted split.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import yaml

from perception.core import Boxes2D, Frame, count_points_in_boxes, project_boxes_to_rects
from perception.data.base import DriveDataset
from perception.data.kitti import KittiDataset
from perception.errors import ConfigError, CorruptFileError, DataError, UnknownClassError
from perception.files import atomic_write

LABEL_SOURCES = ("auto", "2d", "3d")
MIN_BOX_PX = 1.0  # boxes thinner than this after clipping carry no signal and are dropped


def convert_to_yolo(
    dataset: DriveDataset,
    out: str | Path,
    *,
    min_points: int = 0,
    min_visibility: float = 0.0,
    labels: str = "auto",
    cameras: tuple[str, ...] | None = None,
) -> Path:
    """Write every frame's camera images and 2D boxes of ``dataset`` in YOLO layout under ``out``.

    Args:
        dataset: any loader; its ``class_names`` become the YOLO class ids (0, 1, ...).
        out: output folder; ``images/<split>`` and ``labels/<split>`` are replaced as a whole.
        min_points: drop boxes with fewer lidar points (counted in the 3D box; 2D labels need a
            ``num_points`` attribute).
        min_visibility: drop boxes whose visible fraction is smaller (2D labels: ``visibility``
            attribute, else ``1 - truncated``; projected boxes: the part inside the image).
        labels: ``"2d"`` the dataset's 2D boxes, ``"3d"`` projected 3D boxes, ``"auto"`` 2D where a
            camera has them, else projected.
        cameras: cameras to convert (default: every camera with an image).

    Returns:
        The data YAML path (``out/data.yaml``), ready for ultralytics.
    """
    if labels not in LABEL_SOURCES:
        raise ConfigError(f"labels={labels!r}: choose from {LABEL_SOURCES}")
    out = Path(out).resolve()
    split = dataset.split or "all"
    if len(dataset) == 0:
        raise DataError(f"split {split!r} has no frames", path=dataset.spec.source)
    tmp = out / f".{split}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        n_images = _write_split(
            dataset, tmp, min_points=min_points, min_visibility=min_visibility, labels=labels, cameras=cameras
        )
        if n_images == 0:
            raise DataError(f"split {split!r} has no camera images to convert", path=dataset.spec.source)
        for kind in ("images", "labels"):
            dst = out / kind / split
            shutil.rmtree(dst, ignore_errors=True)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / kind, dst)
        (out / "labels" / f"{split}.cache").unlink(missing_ok=True)  # ultralytics' label cache is stale now
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return write_data_yaml(out, dataset.class_names)


def _write_split(dataset: DriveDataset, root: Path, **options) -> int:
    """Write ``root/images`` and ``root/labels`` for every frame; returns the number of images."""
    from tqdm import tqdm

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    n_images = 0
    for i in tqdm(range(len(dataset)), desc=f"yolo {dataset.split or 'all'}", unit="frame", leave=False):
        frame = dataset.load_frame(i, points=options["min_points"] > 0, images=True)
        for camera, image in frame.images.items():
            if options["cameras"] is not None and camera not in options["cameras"]:
                continue
            height, width = image.shape[:2]
            boxes = frame_boxes2d(frame, camera, **{k: options[k] for k in ("min_points", "min_visibility", "labels")})
            stem = _stem(frame, camera)
            source = _image_source(dataset, i, camera)
            ext = Path(source).suffix if source is not None else ".png"
            _place_image(image, Path(source) if source is not None else None, root / "images" / f"{stem}{ext}")
            with atomic_write(root / "labels" / f"{stem}.txt") as f:
                f.write("".join(line + "\n" for line in yolo_label_lines(boxes, width, height)))
            n_images += 1
    return n_images


def frame_boxes2d(
    frame: Frame, camera: str, *, min_points: int = 0, min_visibility: float = 0.0, labels: str = "auto"
) -> Boxes2D:
    """The 2D boxes of one camera of one frame, clipped to the image and filtered.

    Returns:
        Boxes2D with xyxy in pixels inside ``[0, W] x [0, H]``, widths and heights >= 1 px.
    """
    height, width = frame.images[camera].shape[:2]
    use_2d = labels == "2d" or (labels == "auto" and camera in frame.boxes2d)
    if use_2d:
        boxes = frame.boxes2d.get(camera, Boxes2D.empty())
        visible, points = _attributes_2d(frame, boxes, need_points=min_points > 0)
    else:
        boxes, visible, points = _projected_boxes(frame, camera, need_points=min_points > 0)
    if not np.isfinite(boxes.xyxy).all():
        raise CorruptFileError(f"{frame.name}: non-finite 2D box coordinates for camera {camera}")
    if len(boxes) and (boxes.labels.min() < 0 or boxes.labels.max() >= len(frame.class_names)):
        raise UnknownClassError(
            f"{frame.name}: label ids {np.unique(boxes.labels).tolist()} outside {list(frame.class_names)}"
        )
    xyxy = np.clip(boxes.xyxy, 0, [width, height, width, height])
    keep = (
        (xyxy[:, 2] - xyxy[:, 0] >= MIN_BOX_PX) & (xyxy[:, 3] - xyxy[:, 1] >= MIN_BOX_PX) & (visible >= min_visibility)
    )
    if points is not None and min_points > 0:
        keep &= np.asarray(points) >= min_points
    return Boxes2D(xyxy[keep], boxes.labels[keep])


def _attributes_2d(frame: Frame, boxes: Boxes2D, need_points: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Visible fraction and lidar point count of 2D labels.

    Taken from the 2D boxes' own attributes (``visibility`` or ``truncated``, ``num_points``), else
    from the frame's 3D boxes when the 2D labels are those boxes' ``box2d`` rows (KITTI).
    """
    attrs = dict(boxes.attributes)
    b3 = frame.boxes3d
    box2d = None if b3 is None else b3.attributes.get("box2d")
    if box2d is not None and box2d.shape == boxes.xyxy.shape and np.allclose(box2d, boxes.xyxy, atol=1e-3):
        attrs = {**b3.attributes, **attrs}
        if need_points and "num_points" not in attrs and frame.points is not None:
            attrs["num_points"] = count_points_in_boxes(frame.points.xyz, b3.xyz_lwh_yaw)
    if "visibility" in attrs:
        visible = np.asarray(attrs["visibility"], dtype=np.float64)
    elif "truncated" in attrs:
        visible = 1.0 - np.asarray(attrs["truncated"], dtype=np.float64)
    else:
        visible = np.ones(len(boxes))
    points = attrs.get("num_points")
    if need_points and points is None and len(boxes):
        raise ConfigError(
            f"{frame.name}: min_points needs lidar point counts, which these 2D labels lack; use labels='3d'"
        )
    return visible, points


def _projected_boxes(frame: Frame, camera: str, need_points: bool) -> tuple[Boxes2D, np.ndarray, np.ndarray | None]:
    """3D boxes projected into ``camera``: unclipped rects, visible fraction, point counts."""
    boxes3d = frame.boxes3d
    if boxes3d is None or len(boxes3d) == 0 or camera not in frame.calibration.cameras:
        return Boxes2D.empty(), np.zeros(0), np.zeros(0, np.int64)
    rects, valid = project_boxes_to_rects(boxes3d.xyz_lwh_yaw, frame.calibration, camera, clip_to_image=False)
    intr = frame.calibration.cameras[camera]
    clipped = np.clip(rects, 0, [intr.width, intr.height, intr.width, intr.height])
    visible = np.where(valid, _rect_area(clipped) / np.maximum(_rect_area(rects), 1e-9), 0.0)
    points = boxes3d.attributes.get("num_points")
    if points is None and need_points:
        if frame.points is None:
            raise DataError(f"{frame.name}: min_points needs the lidar points, which this frame lacks")
        points = count_points_in_boxes(frame.points.xyz, boxes3d.xyz_lwh_yaw)
    boxes = Boxes2D(rects[valid], boxes3d.labels[valid])
    return boxes, visible[valid], None if points is None else np.asarray(points)[valid]


def _rect_area(xyxy: np.ndarray) -> np.ndarray:
    return np.clip(xyxy[:, 2] - xyxy[:, 0], 0, None) * np.clip(xyxy[:, 3] - xyxy[:, 1], 0, None)


def yolo_label_lines(boxes: Boxes2D, width: int, height: int) -> list[str]:
    """``class cx cy w h`` rows, normalised by the image size, 6 decimals (ultralytics' own precision)."""
    xyxy = boxes.xyxy.astype(np.float64)
    cxcywh = np.column_stack([(xyxy[:, 0] + xyxy[:, 2]) / 2 / width, (xyxy[:, 1] + xyxy[:, 3]) / 2 / height,
                              (xyxy[:, 2] - xyxy[:, 0]) / width, (xyxy[:, 3] - xyxy[:, 1]) / height])  # fmt: skip
    return [f"{c} " + " ".join(f"{v:.6f}" for v in row) for c, row in zip(boxes.labels.tolist(), cxcywh)]


def write_data_yaml(out: Path, class_names: tuple[str, ...]) -> Path:
    """(Re)write ``out/data.yaml`` listing the converted splits; returns its path."""
    splits = sorted(p.name for p in (out / "images").iterdir() if p.is_dir())
    train = "train" if "train" in splits else splits[0]
    val = "val" if "val" in splits else train
    data = {"path": str(out), "train": f"images/{train}", "val": f"images/{val}", "names": dict(enumerate(class_names))}
    if "test" in splits:
        data["test"] = "images/test"
    with atomic_write(out / "data.yaml") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return out / "data.yaml"


def _stem(frame: Frame, camera: str) -> str:
    name = f"{frame.sequence}_{frame.index:06d}_{camera}" if frame.sequence else f"{frame.index:06d}_{camera}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _image_source(dataset: DriveDataset, i: int, camera: str) -> Path | None:
    """The image file behind frame ``i``'s ``camera``, when the loader can name it (optional
    ``image_path(i, camera)`` hook; KITTI: its folder layout); None for in-memory datasets."""
    if hasattr(dataset, "image_path"):
        return dataset.image_path(i, camera)
    if isinstance(dataset, KittiDataset):
        return dataset.path(camera, i, ".png")
    return None


def _place_image(image: np.ndarray, source: Path | None, dst: Path) -> None:
    """Symlink the source file when there is one (no copy), else encode the decoded image."""
    if source is not None and source.is_file():
        os.symlink(source.resolve(), dst)
        return
    if not cv2.imwrite(str(dst), image):
        raise DataError("could not write image", path=dst)
