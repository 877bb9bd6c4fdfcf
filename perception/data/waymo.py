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
from perception.data.convert_kitti import KittiRowsMixin
from perception.data.tables import column, list_column, parquet_columns, read_parquet
from perception.data.tfrecord import read_record, record_index
from perception.data.waymo_proto import CAMERA_NAMES, LABEL_TYPES, LASER_NAMES, MatrixFloat
from perception.data.waymo_proto import Frame as FrameProto
from perception.errors import ConfigError, CorruptFileError, DataError, ShapeError

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


class WaymoDataset(KittiRowsMixin, DriveDataset):
    """Waymo v1 tfrecords: one frame per record. A split names a folder under root (none: all files)."""

    name = "waymo"

    def __init__(self, spec: DatasetSpec, split: str | None = None):
        super().__init__(spec, split)
        folder = spec.root / str(spec.splits.get(self.split, self.split)) if self.split else spec.root
        if not folder.is_dir():
            raise DataError("split folder not found", path=folder)
        _no_options(spec)
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


# Waymo v2 parquet components: column names of the v2 release (``[Component].field.subfield``).
_KEY_TS = "key.frame_timestamp_micros"
_POSE = "[VehiclePoseComponent].world_from_vehicle.transform"
_LIDAR = ("key.laser_name", "[LiDARComponent].range_image_return1.values", "[LiDARComponent].range_image_return1.shape")
_LIDAR_CAL = "[LiDARCalibrationComponent]."
_BOX = "[LiDARBoxComponent]."
_BOX_FIELDS = ("box.center.x", "box.center.y", "box.center.z", "box.size.x", "box.size.y", "box.size.z", "box.heading")
_CAM_CAL = "[CameraCalibrationComponent]."
_CAM_BOX = "[CameraBoxComponent]."


class WaymoV2Dataset(KittiRowsMixin, DriveDataset):
    """Waymo v2 parquet components, one frame per ``vehicle_pose`` row (see module docstring)."""

    name = "waymo_v2"

    def __init__(self, spec: DatasetSpec, split: str | None = None):
        super().__init__(spec, split)
        self.folder = spec.root / str(spec.splits.get(self.split, self.split)) if self.split else spec.root
        pose_dir = self.folder / "vehicle_pose"
        if not pose_dir.is_dir():
            raise DataError("vehicle_pose component folder not found (it lists the frames)", path=pose_dir)
        _no_options(spec)
        self.categories = CategoryMap(spec.classes, spec.class_map, WAYMO_TO_COMMON)
        self._frames: list[tuple[str, int, int]] = []  # (segment, index in segment, timestamp us)
        for path in sorted(pose_dir.glob("*.parquet")):
            stamps = np.unique(column(read_parquet(path, [_KEY_TS]), _KEY_TS, np.int64))
            self._frames += [(path.stem, k, int(ts)) for k, ts in enumerate(stamps)]
        self._calib: dict[str, Calibration] = {}

    def __len__(self) -> int:
        return len(self._frames)

    def frame_key(self, i: int) -> tuple[str, int]:
        return self._frames[i][0], self._frames[i][1]

    def component(self, name: str, segment: str) -> Path:
        return self.folder / name / f"{segment}.parquet"

    def _rows(self, name: str, segment: str, columns: list[str], ts: int | None):
        """The frame's rows of a component (all rows for calibrations); None when the component is absent."""
        path = self.component(name, segment)
        if not path.exists():
            return None
        return read_parquet(path, columns, filters=None if ts is None else [(_KEY_TS, "==", ts)])

    def calibration(self, segment: str) -> tuple[Calibration, dict[int, tuple[np.ndarray, float, float]]]:
        """Camera and lidar calibration of a segment, and per lidar (beam inclinations, min, max)."""
        cam = self._rows("camera_calibration", segment, ["key.camera_name", *(_CAM_CAL + k for k in (
            "intrinsic.f_u", "intrinsic.f_v", "intrinsic.c_u", "intrinsic.c_v", "extrinsic.transform", "width", "height"))], None)  # fmt: skip
        lid = self._rows("lidar_calibration", segment, ["key.laser_name", *(_LIDAR_CAL + k for k in (
            "extrinsic.transform", "beam_inclination.min", "beam_inclination.max", "beam_inclination.values"))], None)  # fmt: skip
        extrinsics, cameras, beams = {}, {}, {}
        if cam is not None:
            path = self.component("camera_calibration", segment)
            ext = list_column(cam, _CAM_CAL + "extrinsic.transform", 16, path)
            for j, name in enumerate(_enum_names(cam, "key.camera_name", CAMERA_NAMES)):
                f = [column(cam, _CAM_CAL + f"intrinsic.{k}", np.float64)[j] for k in ("f_u", "f_v", "c_u", "c_v")]
                extrinsics[name] = camera_extrinsic(ext[j])
                size = (column(cam, _CAM_CAL + "width")[j], column(cam, _CAM_CAL + "height")[j])
                cameras[name] = camera_from_intrinsic(np.array(f), *size)
        if lid is not None:
            ext = list_column(lid, _LIDAR_CAL + "extrinsic.transform", 16, self.component("lidar_calibration", segment))
            values = lid.column(_LIDAR_CAL + "beam_inclination.values").to_pylist()
            lo, hi = (column(lid, _LIDAR_CAL + f"beam_inclination.{k}", np.float64) for k in ("min", "max"))
            for j, laser in enumerate(column(lid, "key.laser_name").astype(np.int64).tolist()):
                extrinsics[LASER_NAMES.get(laser, str(laser))] = SE3(ext[j].reshape(4, 4))
                beams[laser] = (np.asarray(values[j] or [], np.float64), float(lo[j]), float(hi[j]))
        if "LIDAR_TOP" in extrinsics:
            extrinsics["lidar"] = extrinsics["LIDAR_TOP"]
        return Calibration(extrinsics, cameras), beams

    def points(self, segment: str, ts: int, calib: Calibration, beams: dict) -> PointCloud | None:
        t = self._rows("lidar", segment, list(_LIDAR), ts)
        if t is None or t.num_rows == 0:
            return None
        path, clouds = self.component("lidar", segment), []
        values, shapes = t.column(_LIDAR[1]).to_pylist(), t.column(_LIDAR[2]).to_pylist()
        for j, laser in enumerate(column(t, "key.laser_name").astype(np.int64).tolist()):
            if laser not in beams:
                raise CorruptFileError(f"laser {laser} has no lidar_calibration row", path=path)
            ri = np.asarray(values[j], np.float32)
            if ri.size != int(np.prod(shapes[j])):
                raise CorruptFileError(f"laser {laser}: {ri.size} values for shape {shapes[j]}", path=path)
            inc, lo, hi = beams[laser]
            try:
                pitch = inclinations(inc, lo, hi, shapes[j][0])
            except ShapeError as e:
                raise CorruptFileError(str(e), path=path) from None
            clouds.append(range_image_to_points(ri.reshape(shapes[j]), calib.extrinsics[LASER_NAMES[laser]], pitch))
        return PointCloud(np.concatenate(clouds), CHANNELS)

    def boxes3d(self, segment: str, ts: int) -> Boxes3D | None:
        path = self.component("lidar_box", segment)
        if not path.exists():
            return None
        optional = [_BOX + k for k in ("speed.x", "speed.y", "num_lidar_points_in_box")]
        present = [c for c in optional if c in parquet_columns(path)]
        cols = ["key.laser_object_id", _BOX + "type", *(_BOX + k for k in _BOX_FIELDS), *present]
        t = read_parquet(path, cols, filters=[(_KEY_TS, "==", ts)])
        types = column(t, _BOX + "type").astype(int).tolist()
        cls = self.categories.labels([LABEL_TYPES.get(v, "Unknown") for v in types], path)
        keep = cls != DROP
        rows = np.stack([column(t, _BOX + k, np.float64) for k in _BOX_FIELDS], axis=1)  # size.x is the length
        ids = [i for i, k in zip(t.column("key.laser_object_id").to_pylist(), keep, strict=True) if k]
        has_speed = optional[0] in present and optional[1] in present
        velocity = np.stack([column(t, c, np.float64) for c in optional[:2]], axis=1)[keep] if has_speed else None
        attrs = {"num_points": column(t, optional[2], np.int64)[keep]} if optional[2] in present else {}
        return Boxes3D(
            rows[keep], cls[keep], track_ids=[track_id(i) for i in ids], velocity_xy=velocity, attributes=attrs
        )

    def boxes2d(self, segment: str, ts: int) -> dict[str, Boxes2D]:
        fields = ("box.center.x", "box.center.y", "box.size.x", "box.size.y")
        t = self._rows(
            "camera_box",
            segment,
            ["key.camera_name", "key.camera_object_id", _CAM_BOX + "type", *(_CAM_BOX + k for k in fields)],
            ts,
        )
        if t is None:
            return {}
        path = self.component("camera_box", segment)
        names = np.array(_enum_names(t, "key.camera_name", CAMERA_NAMES))
        cls = self.categories.labels(
            [LABEL_TYPES.get(v, "Unknown") for v in column(t, _CAM_BOX + "type").astype(int).tolist()], path
        )
        xy = np.stack([column(t, _CAM_BOX + k, np.float64) for k in fields], axis=1)
        ids = np.array(t.column("key.camera_object_id").to_pylist(), dtype=object)
        return {
            cam: boxes2d_from_xywh(
                xy[names == cam, :2], xy[names == cam, 2:], cls[names == cam], list(ids[names == cam])
            )
            for cam in sorted(set(names))
        }

    def images(self, segment: str, ts: int) -> dict[str, np.ndarray]:
        t = self._rows("camera_image", segment, ["key.camera_name", "[CameraImageComponent].image"], ts)
        if t is None:
            return {}
        path = self.component("camera_image", segment)
        blobs = t.column("[CameraImageComponent].image").to_pylist()
        return {
            name: decode_jpeg(blob, path)
            for name, blob in zip(_enum_names(t, "key.camera_name", CAMERA_NAMES), blobs, strict=True)
        }

    def load_frame(self, i: int, *, points: bool = True, images: bool = True) -> Frame:
        segment, k, ts = self._frames[i]
        if segment not in self._calib:
            self._calib[segment] = self.calibration(segment)
        calib, beams = self._calib[segment]
        pose = read_parquet(self.component("vehicle_pose", segment), [_KEY_TS, _POSE], filters=[(_KEY_TS, "==", ts)])
        return Frame(
            dataset=self.name, sequence=segment, index=k, timestamp_s=ts * 1e-6, class_names=self.class_names,
            points=self.points(segment, ts, calib, beams) if points else None,
            images=self.images(segment, ts) if images else {}, calibration=calib,
            ego_pose=SE3(list_column(pose, _POSE, 16, self.component("vehicle_pose", segment))[0].reshape(4, 4)),
            boxes3d=self.boxes3d(segment, ts), boxes2d=self.boxes2d(segment, ts),
        )  # fmt: skip


def _no_options(spec: DatasetSpec) -> None:
    if spec.options:
        raise ConfigError(f"the Waymo loaders take no options, got {sorted(spec.options)}", path=spec.source)


def _enum_names(table, name: str, names: dict[int, str]) -> list[str]:
    """An enum key column (int8 in the release, sometimes strings) -> our camera / lidar names."""
    return [names.get(int(str(v)), str(v)) for v in table.column(name).to_pylist()]
