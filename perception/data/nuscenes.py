"""nuScenes (and Lyft Level 5, same schema) read straight from the v1.0 JSON tables.

Layout: ``<root>/<version>/{scene,sample,sample_data,ego_pose,calibrated_sensor,sensor,
sample_annotation,instance,category,attribute,visibility,log,map}.json`` and the data files
their ``filename`` fields name, relative to ``<root>``. One frame per keyframe ``sample``.

Frames (our convention, see ``perception.core``):
- points: LIDAR_TOP ``.pcd.bin`` (N x 5 float32: x y z intensity ring) moved from the lidar
  frame (x right, y forward, z up on nuScenes) into the keyframe's ego frame, optionally with
  ``sweeps`` previous non-key sweeps moved there through the global frame; channels
  ``x y z intensity time_lag_s`` (intensity / 255, lag = keyframe time - sweep time).
- boxes: ``sample_annotation`` (global frame, size (w, l, h), quaternion wxyz) moved into the
  ego frame as (l, w, h); velocity as the devkit estimates it (prev/next annotation centre
  difference, NaN when neither exists or they are > 1.5 s apart), rotated into the ego frame;
  attributes ``num_points`` (num_lidar_pts), ``visibility`` (1-4, 0 unknown), ``attribute``.
- calibration: ``lidar`` and ``LIDAR_TOP`` = T_ego_from_lidar; every camera under its channel
  name with ``T_ego(lidar time)_from_camera``, which includes the ego motion between the
  camera's and the lidar's timestamps, so boxes project where the image shows them.

Exercised by ``perception data info datasets/nuscenes.yaml`` and ``datasets/lyft.yaml``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perception.core import SE3, Boxes3D, Calibration, CameraIntrinsics, Frame, PointCloud
from perception.data.base import DatasetSpec, DriveDataset
from perception.data.category_map import DROP, CategoryMap
from perception.data.convert_kitti import KittiRowsMixin
from perception.errors import ConfigError, CorruptFileError, DataError

# Official category -> detection class table of the nuScenes detection challenge (devkit eval).
NUSCENES_TO_DETECTION: dict[str, str | None] = {
    "movable_object.barrier": "barrier", "vehicle.bicycle": "bicycle", "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus", "vehicle.car": "car", "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle", "human.pedestrian.adult": "pedestrian", "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian", "human.pedestrian.police_officer": "pedestrian",
    "movable_object.trafficcone": "traffic_cone", "vehicle.trailer": "trailer", "vehicle.truck": "truck",
    "animal": None, "human.pedestrian.personal_mobility": None, "human.pedestrian.stroller": None,
    "human.pedestrian.wheelchair": None, "movable_object.debris": None, "movable_object.pushable_pullable": None,
    "static_object.bicycle_rack": None, "vehicle.emergency.ambulance": None, "vehicle.emergency.police": None,
}  # fmt: skip
CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT")
CHANNELS = ("x", "y", "z", "intensity", "time_lag_s")
MAX_VELOCITY_GAP_S = 1.5  # the devkit's max_time_diff for box velocities
# Fields the loader reads, per table: a record without one is reported with its index.
REQUIRED_FIELDS = {
    "scene": ("name",), "sample": ("timestamp", "scene_token"), "sensor": ("channel",),
    "sample_data": ("sample_token", "ego_pose_token", "calibrated_sensor_token", "filename", "timestamp"),
    "ego_pose": ("rotation", "translation"), "calibrated_sensor": ("sensor_token", "rotation", "translation"),
    "sample_annotation": ("sample_token", "instance_token", "translation", "size", "rotation"),
    "instance": ("category_token",), "category": ("name",), "attribute": ("name",),
}  # fmt: skip
_OPTIONS = {"version": "v1.0-mini", "lidar": "LIDAR_TOP", "cameras": list(CAMERAS), "sweeps": 0}


class Tables:
    """The JSON tables of one version, loaded on first use and indexed by token."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._index: dict[str, dict[str, dict[str, Any]]] = {}
        self._groups: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def rows(self, table: str) -> list[dict[str, Any]]:
        if table not in self._rows:
            path = self.folder / f"{table}.json"
            if not path.is_file():
                raise DataError(f"table {table!r} not found", path=path)
            try:
                rows = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise CorruptFileError(f"invalid JSON: {e}", path=path) from None
            if not isinstance(rows, list) or not all(isinstance(r, dict) and "token" in r for r in rows):
                raise CorruptFileError("expected a list of records with a 'token'", path=path)
            for k, r in enumerate(rows):
                missing = [f for f in REQUIRED_FIELDS.get(table, ()) if f not in r]
                if missing:
                    raise CorruptFileError(f"record {k} ({r['token']!r}) lacks field(s) {missing}", path=path)
            self._rows[table] = rows
        return self._rows[table]

    def _by_token(self, table: str) -> dict[str, dict[str, Any]]:
        if table not in self._index:
            self._index[table] = {r["token"]: r for r in self.rows(table)}
        return self._index[table]

    def get(self, table: str, token: str, source: str = "") -> dict[str, Any]:
        """The record ``token`` of ``table``; a token pointing nowhere names the table and its source."""
        if token not in self._by_token(table):
            where = f" (referenced by {source})" if source else ""
            raise DataError(f"token {token!r} not found{where}", path=self.folder / f"{table}.json")
        return self._index[table][token]

    def has(self, table: str, token: str) -> bool:
        """Whether ``token`` exists (prev/next links of trimmed excerpts may point outside the tables)."""
        return token in self._by_token(table)

    def group(self, table: str, key: str) -> dict[str, list[dict[str, Any]]]:
        """Records of ``table`` grouped by the value of field ``key`` (built once)."""
        name = f"{table}/{key}"
        if name not in self._groups:
            groups: dict[str, list[dict[str, Any]]] = {}
            for r in self.rows(table):
                groups.setdefault(r.get(key, ""), []).append(r)
            self._groups[name] = groups
        return self._groups[name]

    def field(self, record: dict[str, Any], key: str, table: str) -> Any:
        if key not in record:
            raise CorruptFileError(
                f"record {record.get('token')!r} has no field {key!r}", path=self.folder / f"{table}.json"
            )
        return record[key]


def pose(record: dict[str, Any]) -> SE3:
    """An ego_pose / calibrated_sensor record -> SE3 (rotation wxyz, translation xyz)."""
    return SE3.from_quaternion(
        np.asarray(record["rotation"], np.float64), np.asarray(record["translation"], np.float64)
    )


def quaternions_to_matrices(wxyz: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions (w, x, y, z) -> (N, 3, 3) rotation matrices."""
    q = np.asarray(wxyz, np.float64)
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=1),
    ], axis=1)  # fmt: skip


def read_pcd_bin(path: Path, channels: int = 5) -> np.ndarray:
    """A nuScenes/Lyft ``.pcd.bin`` / ``.bin`` sweep -> (N, 5) float32 x y z intensity ring (lidar frame)."""
    if not path.is_file():
        raise DataError("lidar file not found", path=path)
    size = path.stat().st_size
    if size % (channels * 4):
        raise CorruptFileError(f"{size} bytes is not a multiple of {channels * 4} (N x {channels} float32)", path=path)
    pts = np.fromfile(path, dtype=np.float32).reshape(-1, channels)
    if not np.isfinite(pts[:, :4]).all():
        raise CorruptFileError(
            f"non-finite value in point {int(np.nonzero(~np.isfinite(pts[:, :4]).all(1))[0][0])}", path=path
        )
    return pts


@dataclass(frozen=True)
class _Sample:
    token: str
    scene: str  # scene name
    index: int  # keyframe index within the scene
    timestamp_us: float


class NuScenesDataset(KittiRowsMixin, DriveDataset):
    """Keyframes of the scenes of one split. Options: ``version``, ``lidar``, ``cameras``, ``sweeps``.

    A split entry is ``{version: v1.0-mini, scenes: [scene-0061, ...]}`` (scenes left out: all
    scenes of the version) or a plain list of scene names.
    """

    name = "nuscenes"

    def __init__(self, spec: DatasetSpec, split: str | None = None):
        super().__init__(spec, split)
        unknown = set(spec.options) - set(_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown option(s) {sorted(unknown)}; options: {sorted(_OPTIONS)}", path=spec.source)
        self.options = {**_OPTIONS, **spec.options}
        entry = spec.splits.get(self.split) if self.split else None
        if self.split and entry is None and spec.splits:
            raise ConfigError(f"unknown split {self.split!r}; splits: {sorted(spec.splits)}", path=spec.source)
        entry = {"scenes": entry} if isinstance(entry, list) else dict(entry or {})
        version = entry.get("version", self.options["version"])
        self.tables = Tables(spec.root / version)
        if not self.tables.folder.is_dir():
            raise DataError(f"version folder {version!r} not found", path=self.tables.folder)
        self.categories = CategoryMap(spec.classes, spec.class_map, NUSCENES_TO_DETECTION)
        self.samples = self._keyframes(entry.get("scenes"))
        self._sample_data: dict[tuple[str, str], dict[str, Any]] | None = None
        self._instance_index: dict[str, int] | None = None

    def _keyframes(self, scene_names: list[str] | None) -> list[_Sample]:
        scenes = {s["token"]: s for s in self.tables.rows("scene")}
        wanted = None if scene_names is None else set(scene_names)
        if wanted is not None and wanted - {s["name"] for s in scenes.values()}:
            missing = sorted(wanted - {s["name"] for s in scenes.values()})
            raise DataError(
                f"split names scene(s) {missing[:5]} that scene.json does not have",
                path=self.tables.folder / "scene.json",
            )
        by_scene: dict[str, list[dict[str, Any]]] = {}
        for s in self.tables.rows("sample"):
            scene = self.tables.get("scene", s["scene_token"], f"sample {s['token']}")
            if wanted is None or scene["name"] in wanted:
                by_scene.setdefault(scene["name"], []).append(s)
        out = []
        for name in sorted(by_scene):
            for k, s in enumerate(sorted(by_scene[name], key=lambda r: r["timestamp"])):
                out.append(_Sample(s["token"], name, k, float(s["timestamp"])))
        return out

    def __len__(self) -> int:
        return len(self.samples)

    def frame_key(self, i: int) -> tuple[str, int]:
        return self.samples[i].scene, self.samples[i].index

    def channel(self, sd: dict[str, Any]) -> str:
        cs = self.tables.get("calibrated_sensor", sd["calibrated_sensor_token"], f"sample_data {sd['token']}")
        return self.tables.get("sensor", cs["sensor_token"], f"calibrated_sensor {cs['token']}")["channel"]

    def keyframe_data(self, sample_token: str, channel: str) -> dict[str, Any]:
        """The keyframe sample_data record of ``channel`` for a sample."""
        if self._sample_data is None:
            self._sample_data = {
                (sd["sample_token"], self.channel(sd)): sd
                for sd in self.tables.rows("sample_data")
                if sd.get("is_key_frame")
            }
        if (sample_token, channel) not in self._sample_data:
            raise DataError(
                f"sample {sample_token!r} has no keyframe {channel} data", path=self.tables.folder / "sample_data.json"
            )
        return self._sample_data[(sample_token, channel)]

    def _ego_pose(self, sd: dict[str, Any]) -> SE3:
        return pose(self.tables.get("ego_pose", sd["ego_pose_token"], f"sample_data {sd['token']}"))

    def _sensor_pose(self, sd: dict[str, Any]) -> tuple[SE3, dict[str, Any]]:
        cs = self.tables.get("calibrated_sensor", sd["calibrated_sensor_token"], f"sample_data {sd['token']}")
        return pose(cs), cs

    def calibration(self, sample_token: str) -> tuple[Calibration, SE3, dict[str, Any]]:
        """(Calibration, T_global_from_ego at lidar time, lidar sample_data) of a sample."""
        lidar_sd = self.keyframe_data(sample_token, self.options["lidar"])
        T_global_from_ego = self._ego_pose(lidar_sd)
        T_ego_from_lidar, _ = self._sensor_pose(lidar_sd)
        extrinsics = {"lidar": T_ego_from_lidar, self.options["lidar"]: T_ego_from_lidar}
        cameras = {}
        for cam in self.options["cameras"]:
            sd = self.keyframe_data(sample_token, cam)
            T_egocam_from_cam, cs = self._sensor_pose(sd)
            T_ego_from_egocam = T_global_from_ego.inverse() @ self._ego_pose(sd)
            extrinsics[cam] = T_ego_from_egocam @ T_egocam_from_cam
            K = self.tables.field(cs, "camera_intrinsic", "calibrated_sensor")
            cameras[cam] = CameraIntrinsics(
                np.asarray(K, np.float64), int(sd.get("width", 0)), int(sd.get("height", 0))
            )
        return Calibration(extrinsics, cameras), T_global_from_ego, lidar_sd

    def load_points(self, lidar_sd: dict[str, Any], T_global_from_ego: SE3) -> PointCloud:
        """Keyframe sweep plus ``sweeps`` previous ones, in the keyframe's ego frame (see module doc)."""
        clouds, sd = [], lidar_sd
        for k in range(int(self.options["sweeps"]) + 1):
            if k and (not sd.get("prev") or not self.tables.has("sample_data", sd["prev"])):
                break
            if k:
                sd = self.tables.get("sample_data", sd["prev"])
            pts = read_pcd_bin(self.spec.root / sd["filename"])
            T_ego_from_lidar, _ = self._sensor_pose(sd)
            T = T_global_from_ego.inverse() @ self._ego_pose(sd) @ T_ego_from_lidar
            lag = np.full((len(pts), 1), (lidar_sd["timestamp"] - sd["timestamp"]) * 1e-6, np.float32)
            clouds.append(np.hstack([T.apply(pts[:, :3]), pts[:, 3:4] / 255.0, lag]))
        return PointCloud(np.concatenate(clouds), CHANNELS)

    def load_boxes(self, sample_token: str, T_global_from_ego: SE3) -> Boxes3D:
        anns = self.tables.group("sample_annotation", "sample_token").get(sample_token, [])
        labels = self.categories.labels([self._category(a) for a in anns], self.tables.folder / "category.json")
        keep = [a for a, lab in zip(anns, labels, strict=True) if lab != DROP]
        T_ego_from_global = T_global_from_ego.inverse()
        centre = T_ego_from_global.apply(np.array([a["translation"] for a in keep], np.float64).reshape(-1, 3))
        R = T_ego_from_global.rotation @ quaternions_to_matrices(np.array([a["rotation"] for a in keep]).reshape(-1, 4))
        wlh = np.array([a["size"] for a in keep], np.float64).reshape(-1, 3)  # nuScenes stores (width, length, height)
        rows = np.column_stack([centre, wlh[:, [1, 0, 2]], np.arctan2(R[:, 1, 0], R[:, 0, 0])])
        vel = T_ego_from_global.apply_vectors(np.array([self._velocity(a) for a in keep]).reshape(-1, 3))[:, :2]
        if self._instance_index is None:
            self._instance_index = {r["token"]: i for i, r in enumerate(self.tables.rows("instance"))}
        return Boxes3D(
            rows, labels[labels != DROP], velocity_xy=vel,
            track_ids=[self._instance_index.get(a["instance_token"], -1) for a in keep],
            attributes={
                "num_points": np.array([a.get("num_lidar_pts", -1) for a in keep], np.int64).reshape(-1),
                "visibility": np.array([int(a.get("visibility_token") or 0) for a in keep], np.int64).reshape(-1),
                "attribute": np.array([self._attribute(a) for a in keep], dtype=str).reshape(-1),
            },
        )  # fmt: skip

    def _category(self, ann: dict[str, Any]) -> str:
        inst = self.tables.get("instance", ann["instance_token"], f"sample_annotation {ann['token']}")
        return self.tables.get("category", inst["category_token"], f"instance {inst['token']}")["name"]

    def _attribute(self, ann: dict[str, Any]) -> str:
        tokens = ann.get("attribute_tokens") or []
        return self.tables.get("attribute", tokens[0], f"sample_annotation {ann['token']}")["name"] if tokens else ""

    def _velocity(self, ann: dict[str, Any]) -> np.ndarray:
        """Global (3,) m/s from the neighbouring annotations, as the devkit's ``box_velocity``."""
        ends = [ann]
        for key in ("prev", "next"):
            tok = ann.get(key)
            if tok and self.tables.has("sample_annotation", tok):
                ends.insert(0 if key == "prev" else len(ends), self.tables.get("sample_annotation", tok))
        if len(ends) == 1:
            return np.full(3, np.nan)
        t = [
            self.tables.get("sample", e["sample_token"], f"sample_annotation {e['token']}")["timestamp"]
            for e in (ends[0], ends[-1])
        ]
        dt = (t[1] - t[0]) * 1e-6
        if dt <= 0 or dt > MAX_VELOCITY_GAP_S:
            return np.full(3, np.nan)
        return (np.asarray(ends[-1]["translation"]) - np.asarray(ends[0]["translation"])) / dt

    def load_image(self, sample_token: str, camera: str) -> np.ndarray:
        """(H, W, 3) uint8 BGR keyframe image of one camera."""
        import cv2

        path = self.spec.root / self.keyframe_data(sample_token, camera)["filename"]
        if not path.is_file():
            raise DataError("image not found", path=path)
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise CorruptFileError("cannot decode image", path=path)
        return img

    def check(self) -> list[DataError]:
        """Every frame's tables, lidar file(s) and each camera image, each reported on its own."""
        problems: list[DataError] = []

        def attempt(read) -> None:
            try:
                read()
            except DataError as e:
                problems.append(e)

        for s in self.samples:
            attempt(lambda s=s: self.load_boxes(s.token, self.calibration(s.token)[1]))
            attempt(lambda s=s: self.load_points(*self.calibration(s.token)[2:0:-1]))
            for cam in self.options["cameras"]:
                attempt(lambda s=s, cam=cam: self.load_image(s.token, cam))
        return problems

    def load_frame(self, i: int, *, points: bool = True, images: bool = True) -> Frame:
        s = self.samples[i]
        calib, T_global_from_ego, lidar_sd = self.calibration(s.token)
        return Frame(
            dataset=self.name, sequence=s.scene, index=s.index, timestamp_s=s.timestamp_us * 1e-6,
            class_names=self.class_names, points=self.load_points(lidar_sd, T_global_from_ego) if points else None,
            images={c: self.load_image(s.token, c) for c in self.options["cameras"]} if images else {}, calibration=calib, ego_pose=T_global_from_ego,
            boxes3d=self.load_boxes(s.token, T_global_from_ego),
        )  # fmt: skip
