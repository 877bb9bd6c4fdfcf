"""Argoverse 2 sensor dataset: ``<root>/<split>/<log_id>/`` folders as ``Frame``s.

One frame per lidar sweep (``sensors/lidar/<timestamp_ns>.feather``, x y z float16 in the
ego-vehicle frame, intensity uint8, laser_number, offset_ns). Per log:
``annotations.feather`` (cuboids in the ego frame at each sweep, geometric centre,
quaternion wxyz), ``city_SE3_egovehicle.feather`` (``T_city_from_ego`` per timestamp),
``calibration/egovehicle_SE3_sensor.feather`` and ``calibration/intrinsics.feather``, and
ring camera JPEGs ``sensors/cameras/<camera>/<timestamp_ns>.jpg`` matched to the sweep by
nearest timestamp. AV2's ego frame already is ours (x forward, y left, z up), and its
camera frames are OpenCV's, so no axis change is needed. Exercised by
``perception data info datasets/argoverse2.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from perception.core import SE3, Boxes3D, Calibration, CameraIntrinsics, Frame, PointCloud
from perception.data.base import DatasetSpec, DriveDataset
from perception.data.category_map import DROP, CategoryMap
from perception.data.convert_kitti import KittiRowsMixin
from perception.data.tables import column, feather_columns, read_feather
from perception.errors import ConfigError, CorruptFileError, DataError

# The 26 categories scored by the AV2 3D detection challenge.
AV2_CATEGORIES = (
    "REGULAR_VEHICLE", "PEDESTRIAN", "BICYCLIST", "MOTORCYCLIST", "WHEELED_RIDER", "BOLLARD", "CONSTRUCTION_CONE",
    "SIGN", "CONSTRUCTION_BARREL", "STOP_SIGN", "MOBILE_PEDESTRIAN_CROSSING_SIGN", "LARGE_VEHICLE", "BUS", "BOX_TRUCK",
    "TRUCK", "VEHICULAR_TRAILER", "TRUCK_CAB", "SCHOOL_BUS", "ARTICULATED_BUS", "MESSAGE_BOARD_TRAILER", "BICYCLE",
    "MOTORCYCLE", "WHEELED_DEVICE", "WHEELCHAIR", "STROLLER", "DOG",
)  # fmt: skip
# Defaults when a YAML picks KITTI-style classes: every category has a target or None (dropped).
AV2_TO_COMMON: dict[str, str | None] = {
    **dict.fromkeys(AV2_CATEGORIES, None),
    "REGULAR_VEHICLE": "Car", "LARGE_VEHICLE": "Truck", "BOX_TRUCK": "Truck", "TRUCK": "Truck", "TRUCK_CAB": "Truck",
    "BUS": "Bus", "SCHOOL_BUS": "Bus", "ARTICULATED_BUS": "Bus", "VEHICULAR_TRAILER": "Trailer",
    "PEDESTRIAN": "Pedestrian", "BICYCLIST": "Cyclist", "MOTORCYCLIST": "Cyclist", "BICYCLE": "Bicycle",
    "MOTORCYCLE": "Motorcycle", "CONSTRUCTION_CONE": "TrafficCone", "CONSTRUCTION_BARREL": "Barrier",
    "ANIMAL": None, "RAILED_VEHICLE": None, "OFFICIAL_SIGNALER": None,
}  # fmt: skip
RING_CAMERAS = (
    "ring_front_center", "ring_front_left", "ring_front_right", "ring_rear_left", "ring_rear_right", "ring_side_left",
    "ring_side_right",
)  # fmt: skip
_POSE_COLUMNS = ("timestamp_ns", "qw", "qx", "qy", "qz", "tx_m", "ty_m", "tz_m")
_ANNOTATION_COLUMNS = (
    "timestamp_ns",
    "track_uuid",
    "category",
    "length_m",
    "width_m",
    "height_m",
    "qw",
    "qx",
    "qy",
    "qz",
    "tx_m",
    "ty_m",
    "tz_m",
)
_SWEEP_COLUMNS = ("x", "y", "z", "intensity")
_INTRINSIC_COLUMNS = ("sensor_name", "fx_px", "fy_px", "cx_px", "cy_px", "height_px", "width_px")


def quaternion_yaw(wxyz: np.ndarray) -> np.ndarray:
    """(N, 4) unit quaternions (w, x, y, z) -> (N,) heading about +z of the rotated x axis, rad."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64).T
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


@dataclass(frozen=True)
class PoseTable:
    """Timestamped poses of a ``*_SE3_*`` feather, sorted by time; SE3 objects built on demand."""

    ts: np.ndarray  # (N,) int64 ns
    wxyz: np.ndarray  # (N, 4) float64
    xyz: np.ndarray  # (N, 3) float64

    def nearest(self, ts_ns: int) -> SE3 | None:
        if len(self.ts) == 0:
            return None
        j = int(np.argmin(np.abs(self.ts - ts_ns)))
        return SE3.from_quaternion(self.wxyz[j], self.xyz[j])


def read_poses(path: Path) -> PoseTable:
    """``city_SE3_egovehicle.feather`` -> ``T_city_from_ego`` per timestamp."""
    t = read_feather(path, _POSE_COLUMNS)
    ts = column(t, "timestamp_ns", np.int64)
    order = np.argsort(ts, kind="stable")
    wxyz = np.stack([column(t, k, np.float64) for k in ("qw", "qx", "qy", "qz")], axis=1)
    xyz = np.stack([column(t, k, np.float64) for k in ("tx_m", "ty_m", "tz_m")], axis=1)
    return PoseTable(ts[order], wxyz[order], xyz[order])


def read_calibration(calib_dir: Path) -> Calibration:
    """``egovehicle_SE3_sensor.feather`` + ``intrinsics.feather`` -> Calibration (T_ego_from_sensor)."""
    ext = read_feather(calib_dir / "egovehicle_SE3_sensor.feather", ("sensor_name", *_POSE_COLUMNS[1:]))
    names = column(ext, "sensor_name").astype(str).tolist()
    q = np.stack([column(ext, k, np.float64) for k in ("qw", "qx", "qy", "qz")], axis=1)
    xyz = np.stack([column(ext, k, np.float64) for k in ("tx_m", "ty_m", "tz_m")], axis=1)
    extrinsics = {n: SE3.from_quaternion(q[i], xyz[i]) for i, n in enumerate(names)}
    extrinsics["lidar"] = SE3.identity()  # sweeps are stored in the ego frame already
    intr = read_feather(calib_dir / "intrinsics.feather", _INTRINSIC_COLUMNS)
    cameras = {}
    for i, name in enumerate(column(intr, "sensor_name").astype(str).tolist()):
        if name not in extrinsics:
            raise CorruptFileError(f"camera {name!r} has intrinsics but no extrinsics", path=calib_dir)
        fx, fy, cx, cy = (float(column(intr, k)[i]) for k in ("fx_px", "fy_px", "cx_px", "cy_px"))
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        cameras[name] = CameraIntrinsics(K, int(column(intr, "width_px")[i]), int(column(intr, "height_px")[i]))
    return Calibration(extrinsics, cameras)


def read_sweep(path: Path) -> PointCloud:
    """One lidar sweep -> (N, 4) x y z intensity (intensity scaled to [0, 1]), ego frame."""
    t = read_feather(path, _SWEEP_COLUMNS)
    data = np.empty((t.num_rows, 4), np.float32)
    for j, name in enumerate(_SWEEP_COLUMNS):
        data[:, j] = column(t, name, np.float32)
    data[:, 3] /= 255.0
    if not np.isfinite(data).all():
        raise CorruptFileError(
            f"non-finite value in point {int(np.nonzero(~np.isfinite(data).all(1))[0][0])}", path=path
        )
    return PointCloud(data)


@dataclass(frozen=True)
class _Annotations:
    """A log's cuboids, sorted by timestamp so one sweep's rows are a slice."""

    ts: np.ndarray  # (M,) int64 ns
    boxes: np.ndarray  # (M, 7) float32 ego frame
    labels: np.ndarray  # (M,) int64, DROP for left-out categories
    track_ids: np.ndarray  # (M,) int64, index into the log's sorted track uuids
    num_points: np.ndarray  # (M,) int64, -1 when the file has no num_interior_pts

    def at(self, ts_ns: int) -> Boxes3D:
        lo, hi = np.searchsorted(self.ts, [ts_ns, ts_ns + 1])
        keep = np.arange(lo, hi)[self.labels[lo:hi] != DROP]
        return Boxes3D(
            self.boxes[keep], self.labels[keep], track_ids=self.track_ids[keep],
            attributes={"num_points": self.num_points[keep]},
        )  # fmt: skip


def read_annotations(path: Path, categories: CategoryMap) -> _Annotations:
    """``annotations.feather`` -> ego-frame boxes (l, w, h as given; yaw from the quaternion)."""
    t = read_feather(path, _ANNOTATION_COLUMNS)
    ts = column(t, "timestamp_ns", np.int64)
    q = np.stack([column(t, k, np.float64) for k in ("qw", "qx", "qy", "qz")], axis=1)
    cols = [column(t, k, np.float64) for k in ("tx_m", "ty_m", "tz_m", "length_m", "width_m", "height_m")]
    boxes = np.column_stack([*cols, quaternion_yaw(q)]).astype(np.float32)
    if not np.isfinite(boxes).all():
        raise CorruptFileError("non-finite cuboid value", path=path)
    track_ids = pc.dictionary_encode(t.column("track_uuid")).combine_chunks().indices.to_numpy()
    cats = pc.dictionary_encode(t.column("category")).combine_chunks()
    labels = categories.labels(cats.dictionary.to_pylist(), path)[cats.indices.to_numpy()]
    if "num_interior_pts" in feather_columns(path):
        num = column(read_feather(path, ("num_interior_pts",)), "num_interior_pts", np.int64)
    else:
        num = -np.ones(len(ts), np.int64)
    order = np.argsort(ts, kind="stable")
    return _Annotations(ts[order], boxes[order], labels[order], track_ids[order].astype(np.int64), num[order])


class Argoverse2Dataset(KittiRowsMixin, DriveDataset):
    """Argoverse 2 sensor logs. Options: ``cameras`` (list, default the 7 ring cameras that exist)."""

    name = "argoverse2"

    def __init__(self, spec: DatasetSpec, split: str | None = None):
        super().__init__(spec, split)
        folder = spec.splits.get(self.split, self.split) if self.split else ""
        self.split_dir = spec.root / str(folder or "")
        if not self.split_dir.is_dir():
            raise DataError("split folder not found", path=self.split_dir)
        unknown = set(spec.options) - {"cameras"}
        if unknown:
            raise ConfigError(f"unknown option(s) {sorted(unknown)}; options: ['cameras']", path=spec.source)
        self.cameras = tuple(spec.options.get("cameras", RING_CAMERAS))
        self.categories = CategoryMap(spec.classes, spec.class_map, AV2_TO_COMMON)
        self._cache: dict[tuple, object] = {}  # per-log tables, read once
        self._frames: list[tuple[Path, int, int]] = []  # (log dir, index in log, sweep timestamp ns)
        for log in sorted(p for p in self.split_dir.iterdir() if p.is_dir()):
            stamps = sorted(int(f.stem) for f in (log / "sensors" / "lidar").glob("*.feather") if f.stem.isdigit())
            self._frames += [(log, k, ts) for k, ts in enumerate(stamps)]

    def __len__(self) -> int:
        return len(self._frames)

    def frame_key(self, i: int) -> tuple[str, int]:
        log, k, _ = self._frames[i]
        return log.name, k

    def _cached(self, key: tuple, read):
        if key not in self._cache:
            self._cache[key] = read()
        return self._cache[key]

    def _poses(self, log: Path) -> PoseTable:
        return self._cached(("poses", log), lambda: read_poses(log / "city_SE3_egovehicle.feather"))

    def _annotations(self, log: Path) -> _Annotations | None:
        path = log / "annotations.feather"
        return self._cached(("boxes", log), lambda: read_annotations(path, self.categories) if path.exists() else None)

    def _calibration(self, log: Path) -> Calibration:
        calib_dir = log / "calibration"
        if not calib_dir.is_dir():
            return Calibration({"lidar": SE3.identity()})
        return self._cached(("calib", log), lambda: read_calibration(calib_dir))

    def _camera_stamps(self, log: Path, camera: str) -> np.ndarray:
        folder = log / "sensors" / "cameras" / camera
        return self._cached(
            ("stamps", log, camera),
            lambda: np.array(sorted(int(f.stem) for f in folder.glob("*.jpg") if f.stem.isdigit()), np.int64),
        )

    def _images(self, log: Path, ts: int, calib: Calibration) -> dict[str, np.ndarray]:
        import cv2

        images = {}
        for cam in self.cameras:
            stamps = self._camera_stamps(log, cam)
            if len(stamps) == 0 or cam not in calib.cameras:
                continue
            nearest = int(stamps[np.argmin(np.abs(stamps - ts))])
            path = log / "sensors" / "cameras" / cam / f"{nearest}.jpg"
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise CorruptFileError("cannot decode image", path=path)
            images[cam] = img
        return images

    def load_frame(self, i: int, *, points: bool = True, images: bool = True) -> Frame:
        log, k, ts = self._frames[i]
        calib = self._calibration(log)
        annotations = self._annotations(log)
        return Frame(
            dataset=self.name, sequence=log.name, index=k, timestamp_s=ts * 1e-9, class_names=self.class_names,
            points=read_sweep(log / "sensors" / "lidar" / f"{ts}.feather") if points else None,
            images=self._images(log, ts, calib) if images else {}, calibration=calib,
            ego_pose=self._poses(log).nearest(ts),
            boxes3d=annotations.at(ts) if annotations is not None else None,
        )  # fmt: skip

    def check(self) -> list[DataError]:
        """Per log: poses, calibration folder, annotations; then every frame."""
        problems: list[DataError] = []
        for log in sorted({f[0] for f in self._frames}):
            if not (log / "calibration").is_dir():
                problems.append(
                    DataError("calibration folder missing (no camera projection possible)", path=log / "calibration")
                )
            for reader in (self._poses, self._annotations, self._calibration):
                try:
                    reader(log)
                except DataError as e:
                    problems.append(e)
        seen = {str(p) for p in problems}
        return problems + [e for e in super().check() if str(e) not in seen]
