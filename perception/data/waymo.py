"""Waymo Open Dataset, perception: v1 ``.tfrecord`` segments and the v2 parquet release.

v1 (``format: waymo``): ``<root>/<split folder>/*.tfrecord``, one segment per file, one
``Frame`` proto per record, decoded with ``perception.data.waymo_proto`` (no TensorFlow).
v2 (``format: waymo_v2``): ``<root>/<split folder>/<component>/<segment>.parquet`` with the
components ``vehicle_pose`` (required: it lists the frames), ``lidar``, ``lidar_calibration``,
``lidar_box``, ``camera_image``, ``camera_calibration``, ``camera_box`` (each optional), joined
on ``key.segment_context_name`` + ``key.frame_timestamp_micros``. Only the needed columns and
the frame's rows are read, so a segment never has to fit in memory.

Frames: Waymo's vehicle frame is ours (x forward, y left, z up). Points come from the first
return of each lidar's range image: per-row inclinations (``beam_inclinations``, or uniform
between min and max), per-column azimuths, then the lidar extrinsic (``T_vehicle_from_lidar``);
the top lidar's per-pixel rolling-shutter poses are not applied. Channels
``x y z intensity elongation`` (intensity squashed with tanh into [0, 1)). Waymo camera frames
are x forward, y left, z up; the recorded extrinsics are converted to OpenCV camera axes.
Lens distortion is ignored (pinhole K from f_u, f_v, c_u, c_v).

Exercised by ``perception data info datasets/waymo.yaml``.
"""

from __future__ import annotations

import hashlib
import warnings
import zlib
from pathlib import Path

import numpy as np

from perception.core import SE3, Boxes2D, Boxes3D, Calibration, CameraIntrinsics, Frame, PointCloud
from perception.data.base import DatasetSpec, DriveDataset
from perception.data.category_map import DROP, CategoryMap
from perception.data.tfrecord import read_record, record_index
from perception.data.waymo_proto import CAMERA_NAMES, LABEL_TYPES, LASER_NAMES, MatrixFloat
from perception.data.waymo_proto import Frame as FrameProto
from perception.errors import CorruptFileError, DataError, ShapeError

CHANNELS = ("x", "y", "z", "intensity", "elongation")
# Waymo camera axes (x forward, y left, z up) from OpenCV camera axes (x right, y down, z forward).
T_WAYMOCAM_FROM_OPENCV = SE3.from_rt(np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]), np.zeros(3))
WAYMO_TO_COMMON: dict[str, str | None] = {
    "Vehicle": "Car",
    "Pedestrian": "Pedestrian",
    "Cyclist": "Cyclist",
    "Sign": None,
    "Unknown": None,
}


def track_id(object_id: str) -> int:
    """A stable int64 for a Waymo object id string (the same object keeps it in every frame)."""
    return int.from_bytes(hashlib.blake2b(object_id.encode(), digest_size=8).digest(), "little", signed=True) & (
        2**63 - 1
    )


def inclinations(beam_inclinations: np.ndarray, inc_min: float, inc_max: float, height: int) -> np.ndarray:
    """(H,) pitch of each range-image row, row 0 the highest beam (Waymo's ``compute_range_image_polar``)."""
    inc = np.asarray(beam_inclinations, np.float64)
    if inc.size == 0:
        inc = inc_min + (np.arange(height) + 0.5) / height * (inc_max - inc_min)
    if inc.size != height:
        raise ShapeError(f"{inc.size} beam inclinations for a range image of {height} rows")
    return inc[::-1]


def range_image_to_points(range_image: np.ndarray, T_ego_from_lidar: SE3, pitch: np.ndarray) -> np.ndarray:
    """(H, W, >=3) range image (range, intensity, elongation, ...) -> (N, 5) ego-frame points.

    Column w looks at azimuth ``(2 (W - w - 0.5) / W - 1) pi`` minus the lidar's yaw on the vehicle;
    pixels with range <= 0 are empty.
    """
    h, w = range_image.shape[:2]
    az_correction = np.arctan2(T_ego_from_lidar.matrix[1, 0], T_ego_from_lidar.matrix[0, 0])
    azimuth = (2.0 * (np.arange(w, 0, -1) - 0.5) / w - 1.0) * np.pi - az_correction
    r = range_image[..., 0].astype(np.float64)
    valid = r > 0
    rr, cos_p, sin_p = r[valid], np.cos(pitch)[:, None].repeat(w, 1)[valid], np.sin(pitch)[:, None].repeat(w, 1)[valid]
    az = np.broadcast_to(azimuth[None, :], (h, w))[valid]
    xyz = np.stack([rr * cos_p * np.cos(az), rr * cos_p * np.sin(az), rr * sin_p], axis=1)
    feats = range_image[valid][:, 1:3].astype(np.float64)
    feats[:, 0] = np.tanh(feats[:, 0])
    return np.hstack([T_ego_from_lidar.apply(xyz), feats]).astype(np.float32)


def camera_from_intrinsic(intrinsic: np.ndarray, width: int, height: int) -> CameraIntrinsics:
    """Waymo ``[f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3]`` -> pinhole intrinsics (distortion dropped)."""
    f_u, f_v, c_u, c_v = np.asarray(intrinsic, np.float64)[:4]
    return CameraIntrinsics(np.array([[f_u, 0.0, c_u], [0.0, f_v, c_v], [0.0, 0.0, 1.0]]), int(width), int(height))


def camera_extrinsic(T_vehicle_from_waymocam: np.ndarray) -> SE3:
    """A Waymo camera extrinsic (4x4, row-major values) -> ``T_ego_from_camera`` in OpenCV axes."""
    return SE3(np.asarray(T_vehicle_from_waymocam, np.float64).reshape(4, 4)) @ T_WAYMOCAM_FROM_OPENCV


def decode_jpeg(data: bytes, where: Path | str) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise CorruptFileError("cannot decode camera JPEG", path=where)
    return img


def boxes2d_from_xywh(centre_xy: np.ndarray, size_xy: np.ndarray, labels: np.ndarray, ids: list[str]) -> Boxes2D:
    """Waymo axis-aligned image boxes (centre, size in pixels) -> ``Boxes2D`` (rows with DROP removed)."""
    keep = labels != DROP
    xyxy = np.hstack([centre_xy - size_xy / 2, centre_xy + size_xy / 2])[keep]
    return Boxes2D(xyxy, labels[keep], track_ids=[track_id(i) for i, k in zip(ids, keep, strict=True) if k])


class WaymoDataset(DriveDataset):
    """Waymo v1 tfrecords: one frame per record. A split names a folder under root (none: all files)."""

    name = "waymo"

    def __init__(self, spec: DatasetSpec, split: str | None = None):
        super().__init__(spec, split)
        folder = spec.root / str(spec.splits.get(self.split, self.split)) if self.split else spec.root
        if not folder.is_dir():
            raise DataError("split folder not found", path=folder)
        self.categories = CategoryMap(spec.classes, spec.class_map, WAYMO_TO_COMMON)
        self.problems: list[DataError] = []  # files whose framing is broken: skipped, reported by check()
        self._records: list[tuple[Path, int, int, int]] = []  # (file, record number, offset, length)
        for path in sorted(folder.rglob("*.tfrecord")):
            try:
                self._records += [(path, k, off, n) for k, (off, n) in enumerate(record_index(path))]
            except DataError as e:
                warnings.warn(f"skipping {e}", stacklevel=2)
                self.problems.append(e)
        if not self._records and not self.problems:
            raise DataError("no .tfrecord files found", path=folder)

    def __len__(self) -> int:
        return len(self._records)

    def frame_key(self, i: int) -> tuple[str, int]:
        path, k, _, _ = self._records[i]
        return path.stem.removeprefix("segment-").removesuffix("_with_camera_labels"), k

    def read_proto(self, i: int) -> FrameProto:
        path, k, offset, length = self._records[i]
        msg = FrameProto()
        try:
            msg.ParseFromString(read_record(path, offset, length))
        except Exception as e:  # protobuf's DecodeError, or a bad nested message
            if isinstance(e, DataError):
                raise
            raise CorruptFileError(f"record {k}: not a Waymo Frame proto ({e})", path=path) from None
        return msg

    def calibration(self, msg: FrameProto) -> Calibration:
        extrinsics, cameras = {}, {}
        for c in msg.context.camera_calibrations:
            name = CAMERA_NAMES.get(c.name, str(c.name))
            extrinsics[name] = camera_extrinsic(c.extrinsic.transform)
            cameras[name] = camera_from_intrinsic(c.intrinsic, c.width, c.height)
        for c in msg.context.laser_calibrations:
            extrinsics[LASER_NAMES.get(c.name, str(c.name))] = SE3(np.asarray(c.extrinsic.transform).reshape(4, 4))
        if "LIDAR_TOP" in extrinsics:
            extrinsics["lidar"] = extrinsics["LIDAR_TOP"]
        return Calibration(extrinsics, cameras)

    def points(self, msg: FrameProto, calib: Calibration, where: str) -> PointCloud | None:
        """All lidars' first returns in the ego frame; None when the record holds no range images."""
        lasers = {c.name: c for c in msg.context.laser_calibrations}
        clouds = []
        for laser in msg.lasers:
            blob = laser.ri_return1.range_image_compressed
            if not blob or laser.name not in lasers:
                continue
            c = lasers[laser.name]
            try:
                mat = MatrixFloat()
                mat.ParseFromString(zlib.decompress(blob))
                ri = np.asarray(mat.data, np.float32).reshape(tuple(mat.shape.dims))
                pitch = inclinations(
                    np.asarray(c.beam_inclinations), c.beam_inclination_min, c.beam_inclination_max, len(ri)
                )
            except (zlib.error, ValueError, ShapeError) as e:  # ValueError: data size vs dims; DecodeError is one
                raise CorruptFileError(f"{where}: laser {LASER_NAMES.get(laser.name)} range image: {e}") from None
            clouds.append(
                range_image_to_points(ri, calib.extrinsics[LASER_NAMES.get(laser.name, str(laser.name))], pitch)
            )
        return PointCloud(np.concatenate(clouds), CHANNELS) if clouds else None

    def boxes3d(self, labels, where: str) -> Boxes3D:
        cls = self.categories.labels([LABEL_TYPES.get(lab.type, "Unknown") for lab in labels], Path(where))
        keep = [lab for lab, c in zip(labels, cls, strict=True) if c != DROP]
        rows = [
            [b.center_x, b.center_y, b.center_z, b.length, b.width, b.height, b.heading] for b in (k.box for k in keep)
        ]
        return Boxes3D(
            np.array(rows, np.float64).reshape(-1, 7), cls[cls != DROP],
            track_ids=[track_id(k.id) for k in keep],
            velocity_xy=np.array([[k.metadata.speed_x, k.metadata.speed_y] for k in keep]).reshape(-1, 2),
            attributes={
                "num_points": np.array([k.num_lidar_points_in_box for k in keep], np.int64),
                "difficulty": np.array([k.detection_difficulty_level for k in keep], np.int64),
            },
        )  # fmt: skip

    def boxes2d(self, msg: FrameProto, where: str) -> dict[str, Boxes2D]:
        out = {}
        for cam in msg.camera_labels:
            labs = list(cam.labels)
            cls = self.categories.labels([LABEL_TYPES.get(lab.type, "Unknown") for lab in labs], Path(where))
            centre = np.array([[lab.box.center_x, lab.box.center_y] for lab in labs]).reshape(-1, 2)
            size = np.array([[lab.box.length, lab.box.width] for lab in labs]).reshape(-1, 2)  # length: along x
            out[CAMERA_NAMES.get(cam.name, str(cam.name))] = boxes2d_from_xywh(
                centre, size, cls, [lab.id for lab in labs]
            )
        return out

    def load_frame(self, i: int, *, points: bool = True, images: bool = True) -> Frame:
        msg = self.read_proto(i)
        seq, k = self.frame_key(i)
        calib = self.calibration(msg)
        where = f"{self._records[i][0]} record {k}"
        return Frame(
            dataset=self.name, sequence=seq, index=k, timestamp_s=msg.timestamp_micros * 1e-6,
            class_names=self.class_names, points=self.points(msg, calib, where) if points else None,
            images={CAMERA_NAMES.get(im.name, str(im.name)): decode_jpeg(im.image, where) for im in msg.images} if images else {},
            calibration=calib, ego_pose=SE3(np.asarray(msg.pose.transform).reshape(4, 4)) if msg.HasField("pose") else None,
            boxes3d=self.boxes3d(msg.laser_labels, where), boxes2d=self.boxes2d(msg, where),
        )  # fmt: skip

    def check(self) -> list[DataError]:
        return self.problems + super().check()
