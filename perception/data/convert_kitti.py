"""Any dataset -> the KITTI 3D object layout (and, on request, the tracking layout).

``perception data convert --from datasets/nuscenes.yaml --to kitti --out runs/nusc_kitti``
writes, for every frame of the split::

    training/velodyne/000000.bin   ego-frame x y z intensity (float32); the ego frame plays the Velodyne
    training/image_2/000000.png    the chosen camera's image (when the frame has one)
    training/calib/000000.txt      P0-P3 = [K | 0], R0_rect = I, Tr_velo_to_cam = T_camera_from_ego
    training/label_2/000000.txt    the 3D boxes as KITTI rows in that camera's frame
    ImageSets/<split>.txt, frames.txt (id -> source sequence and index), kitti.yaml

so ``perception data info runs/nusc_kitti/kitti.yaml`` reads the result back. The camera is
the dataset's front camera (``image_2``, ``CAM_FRONT``, ``FRONT``, ``ring_front_center``) or
the first one; a frame without cameras gets a virtual KITTI-like camera at the ego origin
looking along +x. ``truncated`` is the part of the projected box outside the image; boxes
behind the camera keep a zero 2D box. The tracking layout (``layout="tracking"``) writes
``velodyne/<seq>/``, ``image_02/<seq>/``, ``label_02/<seq>.txt`` and ``calib/<seq>.txt`` (the
sequence's first frame calibration).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from perception.core import SE3, Calibration, CameraIntrinsics, Frame, count_points_in_boxes, project_boxes_to_rects
from perception.data.base import DriveDataset
from perception.data.kitti_format import (
    KittiObjects,
    boxes3d_to_objects,
    format_label_lines,
    kitti_calibration,
    with_frame,
    write_calib_file,
    write_points_bin,
)
from perception.errors import ConfigError, DataError
from perception.files import atomic_path, atomic_write

FRONT_CAMERAS = ("image_2", "CAM_FRONT", "FRONT", "ring_front_center")
# Virtual camera for camera-less frames: KITTI's image size and a similar focal length.
VIRTUAL_K = np.array([[720.0, 0.0, 621.0], [0.0, 720.0, 187.5], [0.0, 0.0, 1.0]])
VIRTUAL_SIZE = (1242, 375)
T_OPENCV_FROM_EGO_AXES = SE3.from_rt(np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]), np.zeros(3))


def choose_camera(calib: Calibration, camera: str | None = None) -> str | None:
    """The camera labels are written for: ``camera`` if given, else the front camera, else the first."""
    if camera is not None:
        if camera not in calib.cameras:
            raise ConfigError(f"camera {camera!r} not in {sorted(calib.cameras)}")
        return camera
    return next((c for c in FRONT_CAMERAS if c in calib.cameras), next(iter(calib.cameras), None))


def kitti_calib_for(frame: Frame, camera: str | None) -> dict[str, np.ndarray]:
    """KITTI calib matrices (object spelling) that make the ego frame the Velodyne and ``camera`` P2."""
    if camera is None:
        K, T_cam_from_ego = VIRTUAL_K, T_OPENCV_FROM_EGO_AXES
    else:
        K, T_cam_from_ego = frame.calibration.cameras[camera].K, frame.calibration.T(camera, "ego")
    P = np.hstack([K, np.zeros((3, 1))])
    return {"P0": P, "P1": P, "P2": P, "P3": P, "R0_rect": np.eye(3), "Tr_velo_to_cam": T_cam_from_ego.matrix[:3],
            "Tr_imu_to_velo": np.eye(4)[:3]}  # fmt: skip


def image_size(frame: Frame, camera: str | None) -> tuple[int, int]:
    if camera is None:
        return VIRTUAL_SIZE
    intr: CameraIntrinsics = frame.calibration.cameras[camera]
    if intr.width and intr.height:
        return intr.width, intr.height
    image = frame.images.get(camera)
    return (image.shape[1], image.shape[0]) if image is not None else VIRTUAL_SIZE


def frame_to_kitti(
    frame: Frame, camera: str | None = None, *, min_points: int = 0, min_visibility: float = 0.0
) -> tuple[KittiObjects, dict[str, np.ndarray]]:
    """A frame's 3D boxes as KITTI label rows, and the calib matrices they are expressed in.

    Boxes with fewer than ``min_points`` lidar points (the ``num_points`` attribute, else counted
    in ``frame.points``) or a visible image fraction below ``min_visibility`` are left out.
    """
    camera = choose_camera(frame.calibration, camera)
    raw = kitti_calib_for(frame, camera)
    calib = kitti_calibration(raw, {"image_2": image_size(frame, camera)})
    boxes = frame.boxes3d
    if boxes is None or len(boxes) == 0:
        return KittiObjects.empty(), raw
    boxes = boxes.replace(attributes={})  # source attributes (box2d of another camera, ...) do not apply
    clipped, _ = project_boxes_to_rects(boxes.xyz_lwh_yaw, calib, "image_2")
    full, _ = project_boxes_to_rects(boxes.xyz_lwh_yaw, calib, "image_2", clip_to_image=False)
    area = lambda r: np.clip(r[:, 2] - r[:, 0], 0, None) * np.clip(r[:, 3] - r[:, 1], 0, None)
    visible = np.where(area(full) > 0, area(clipped) / np.maximum(area(full), 1e-9), 0.0)
    keep = visible >= min_visibility
    if min_points > 0:
        keep &= _num_points(frame) >= min_points
    boxes = boxes.replace(attributes={"truncated": 1.0 - visible, "box2d": clipped})[np.nonzero(keep)[0]]
    return boxes3d_to_objects(boxes, calib, frame.class_names), raw


def _num_points(frame: Frame) -> np.ndarray:
    counts = frame.boxes3d.attributes.get("num_points")
    if counts is not None and (np.asarray(counts) >= 0).all():
        return np.asarray(counts)
    if frame.points is None:
        raise DataError(f"{frame.name}: min_points needs lidar points or a num_points attribute")
    return count_points_in_boxes(frame.points.xyz, frame.boxes3d.xyz_lwh_yaw)


class KittiRowsMixin:
    """``kitti_objects(i)`` for loaders of non-KITTI datasets, so the KITTI evaluator works on them."""

    def kitti_objects(self, i: int) -> KittiObjects:
        """Frame ``i``'s boxes as KITTI rows in its front camera's frame (``frame_to_kitti``)."""
        return frame_to_kitti(self.load_frame(i, points=False, images=False))[0]


def points_xyzi(frame: Frame) -> np.ndarray:
    """(N, 4) float32 ego-frame x y z intensity (zeros when the cloud has no intensity)."""
    pts = frame.points
    intensity = pts.channel("intensity") if "intensity" in pts.channels else np.zeros(len(pts), np.float32)
    return np.column_stack([pts.xyz, intensity]).astype(np.float32)


def write_image(path: Path, image: np.ndarray) -> None:
    import cv2

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise DataError("cannot write image", path=path)


def convert_to_kitti(
    dataset: DriveDataset, out: str | Path, *, min_points: int = 0, min_visibility: float = 0.0,
    camera: str | None = None, layout: str = "object",
) -> Path:  # fmt: skip
    """Write ``dataset``'s split in KITTI layout under ``out`` (see module docstring).

    Returns:
        ``out/kitti.yaml`` (object layout) or ``out/kitti_tracking.yaml`` (tracking layout).
    """
    if layout not in ("object", "tracking"):
        raise ConfigError(f"layout={layout!r}: choose 'object' or 'tracking'")
    if len(dataset) == 0:
        raise DataError(f"split {dataset.split!r} has no frames", path=dataset.spec.source)
    out = Path(out).resolve()
    opts = {"min_points": min_points, "min_visibility": min_visibility, "camera": camera}
    if layout == "tracking":
        return _write_tracking(dataset, out, **opts)
    return _write_object(dataset, out, **opts)


def _write_frame_files(
    frame: Frame, folder: Path, stem: str, image_dir: str, raw_calib: dict, camera: str | None
) -> None:
    if frame.points is not None:
        write_points_bin(folder / "velodyne" / f"{stem}.bin", points_xyzi(frame))
    if camera is not None and camera in frame.images:
        write_image(folder / image_dir / f"{stem}.png", frame.images[camera])
    if raw_calib is not None:
        write_calib_file(folder / "calib" / f"{stem}.txt", raw_calib)


def _write_object(dataset: DriveDataset, out: Path, **opts) -> Path:
    from tqdm import tqdm

    split = dataset.split or "all"
    first = _first_free_id(out, split)
    folder, ids, provenance = out / "training", [], []
    for i in tqdm(range(len(dataset)), desc=f"kitti {split}", unit="frame", leave=False):
        frame = dataset.load_frame(i)
        camera = choose_camera(frame.calibration, opts["camera"])
        objs, raw = frame_to_kitti(frame, camera, min_points=opts["min_points"], min_visibility=opts["min_visibility"])
        stem = f"{first + i:06d}"
        _write_frame_files(frame, folder, stem, "image_2", raw, camera)
        with atomic_write(folder / "label_2" / f"{stem}.txt") as f:
            f.write("".join(line + "\n" for line in format_label_lines(objs)))
        ids.append(stem)
        provenance.append(f"{stem} {frame.dataset} {frame.sequence or '-'} {frame.index}")
    with atomic_write(out / "ImageSets" / f"{split}.txt") as f:
        f.write("".join(s + "\n" for s in ids))
    with atomic_write(out / f"frames_{split}.txt") as f:
        f.write("".join(line + "\n" for line in provenance))
    return _write_yaml(
        out / "kitti.yaml",
        "kitti",
        dataset.class_names,
        split,
        sorted(p.stem for p in (out / "ImageSets").glob("*.txt")),
    )


def _first_free_id(out: Path, split: str) -> int:
    """Frame ids continue after those of the other splits already written to ``out``."""
    used = [int(s) for p in (out / "ImageSets").glob("*.txt") if p.stem != split for s in p.read_text().split()]
    return max(used) + 1 if used else 0


def _write_tracking(dataset: DriveDataset, out: Path, **opts) -> Path:
    from tqdm import tqdm

    folder, names = out / "training", []
    for seq_id, (name, indices) in enumerate(
        tqdm(sorted(dataset.sequences().items()), desc="kitti tracking", leave=False)
    ):
        seq, rows, track_map, raw0 = f"{seq_id:04d}", [], {-1: -1}, None
        names.append(f"{seq} {name or '-'}")
        for k, i in enumerate(indices):
            frame = dataset.load_frame(i)
            camera = choose_camera(frame.calibration, opts["camera"])
            objs, raw = frame_to_kitti(
                frame, camera, min_points=opts["min_points"], min_visibility=opts["min_visibility"]
            )
            raw0 = raw if raw0 is None else raw0
            tids = objs.track_id if objs.track_id is not None else -np.ones(len(objs), np.int64)
            objs = replace(
                objs, track_id=np.array([track_map.setdefault(int(t), len(track_map)) for t in tids], np.int64)
            )
            rows.extend(format_label_lines(with_frame(objs, k)))
            _write_frame_files(frame, folder, f"{seq}/{k:06d}", "image_02", None, camera)
        write_calib_file(folder / "calib" / f"{seq}.txt", raw0)
        with atomic_write(folder / "label_02" / f"{seq}.txt") as f:
            f.write("".join(line + "\n" for line in rows))
    with atomic_write(out / "sequences.txt") as f:
        f.write("".join(line + "\n" for line in names))
    return _write_yaml(out / "kitti_tracking.yaml", "kitti_tracking", dataset.class_names, None, [])


def _write_yaml(path: Path, fmt: str, classes: tuple[str, ...], split: str | None, splits: list[str]) -> Path:
    import yaml

    doc = {"format": fmt, "root": ".", "split": split, "splits": {s: f"ImageSets/{s}.txt" for s in splits},
           "classes": list(classes)}  # fmt: skip
    with atomic_write(path) as f:
        f.write(f"# written by perception data convert --to kitti\n{yaml.safe_dump(doc, sort_keys=False)}")
    return path
