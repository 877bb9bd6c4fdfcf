"""The synthetic driving dataset: deterministic per seed, generated in memory, no downloads.

``perception data info datasets/synthetic.yaml`` reads it like any dataset, and
``perception data synth --out DIR --frames 50 --sequences 4`` writes it in the KITTI object and
tracking layouts (plus dataset YAMLs), so every KITTI code path reads it too.

Each sequence is a drive along a (straight or gently curved) road lined with buildings, lamp
posts and trees, with
cars in lanes and parked, cyclists at the road edges and pedestrians on the sidewalks (see
``synthetic_scene``). A frame holds a 32-ring lidar sweep ray-cast against that scene
(``synthetic_lidar``), a KITTI-sized camera image rendered from the same scene
(``synthetic_camera``), a KITTI-like calibration (ego = lidar frame, ground at z = -1.73 m),
the ego pose (world = the IMU frame of the drive's first frame, the KITTI devkit's convention,
so it equals what the KITTI tracking loader reads back from the written oxts) and ground truth
like KITTI's: 3D boxes of every actor in the field of interest
(0..70.4 m ahead, +-40 m to the side) with track ids, ground velocities (ego axes, m/s) and
attributes ``truncated``, ``occluded`` (0..2; 3 when hidden or outside the image), ``alpha``,
``box2d``, ``visibility`` (visible fraction in image_2), ``num_points`` and ``difficulty``;
2D boxes of the actors at least ``min_visibility`` visible and ``min_height_px`` tall.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perception.core import SE3, Boxes2D, Boxes3D, Frame, PointCloud, points_in_boxes, project_boxes_to_rects
from perception.core.boxes import wrap_angle
from perception.data.base import DatasetSpec, DriveDataset
from perception.data.kitti import resolve_options
from perception.data.kitti_format import (
    KittiObjects,
    boxes3d_to_objects,
    kitti_calibration,
    kitti_difficulty,
)
from perception.data.synthetic_camera import CameraRenderer, box_visibility
from perception.data.synthetic_lidar import LidarModel
from perception.data.synthetic_scene import (
    CLASSES,
    FRAME_PERIOD_S,
    LIDAR_HEIGHT_M,
    STRIDE_M,
    Scenario,
    actor_parts,
    make_scenario,
    paint_coverage,
    surface_zone,
)
from perception.errors import ConfigError

CAMERA = "image_2"
IMAGE_SIZE = (1242, 375)  # width, height
FIELD_X_M, FIELD_Y_M = (0.0, 70.4), 40.0  # boxes of the ground truth: ahead, and to either side
SENSE_RANGE_M = 120.0
_OPTIONS = {"sequences": 8, "frames": 100, "seed": 0, "val_sequences": 2, "density": 1.0, "rings": 32,
            "azimuth_steps": 1024, "min_visibility": 0.1, "min_height_px": 0.0}  # fmt: skip
_ZONE_REFLECTIVITY = np.array([0.12, 0.15, 0.3, 0.25])
_PAINT_REFLECTIVITY = 0.8
_CACHED_SEQUENCES = 8


_LIMITS = {"sequences": (1, 10_000), "frames": (1, 100_000), "seed": (0, 2**63 - 1), "val_sequences": (0, 10_000),
           "density": (0.01, 10.0), "rings": (2, 256), "azimuth_steps": (8, 16_384), "min_visibility": (0.0, 1.0),
           "min_height_px": (0.0, 375.0)}  # fmt: skip


def _checked_options(options: dict[str, Any], source: Path | None) -> dict[str, Any]:
    """Options as numbers of the default's type, each within its range, else one ConfigError naming it."""
    out = {}
    for key, value in options.items():
        lo, hi = _LIMITS[key]
        kind = type(_OPTIONS[key])
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"options.{key}: {value!r} is not a number", path=source) from None
        if not lo <= number <= hi or (kind is int and number != value):
            raise ConfigError(f"options.{key}: {value!r} must be {kind.__name__} in [{lo}, {hi}]", path=source)
        out[key] = number
    return out


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    return (
        np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    )


def synthetic_calib_raw() -> dict[str, np.ndarray]:
    """KITTI-style calibration matrices of the synthetic car (values close to KITTI's own rig).

    Cameras 0-3 share ``K``; camera 2 sits 6 cm left of camera 0, camera 3 47 cm right of it
    (``P = K [I | t]``). The lidar is 27 cm behind and 8 cm above camera 0, the IMU 0.8 m below
    and behind the lidar.
    """
    K = np.array([[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]])
    P = {f"P{i}": np.column_stack([K, K @ np.array([tx, 0.0, 0.0])]) for i, tx in enumerate((0, -0.537, 0.06, -0.473))}
    axes = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])  # velodyne -> camera axes
    R_velo = _rotation(0.002, -0.004, 0.001) @ axes
    return {
        **P,
        "R0_rect": _rotation(-0.006, 0.003, 0.0015),
        "Tr_velo_to_cam": np.column_stack([R_velo, [-0.004, -0.076, -0.272]]),
        "Tr_imu_to_velo": np.column_stack([np.eye(3), [-0.811, 0.320, -0.800]]),
    }


@dataclass(frozen=True)
class _Truth:
    """Ground truth of one frame, before class mapping (indices into the near actors)."""

    boxes3d: Boxes3D
    boxes2d: Boxes2D


class SyntheticDataset(DriveDataset):
    """Frames generated on demand; nothing is read from disk (``root`` is unused).

    Options (YAML ``options:``): ``sequences``, ``frames`` (per sequence, 10 Hz), ``seed``,
    ``val_sequences`` (the last ones form split ``val``, the others ``train``; no split: all),
    ``density`` (actors per metre of lane, x), ``rings``, ``azimuth_steps`` (lidar beams),
    ``min_visibility`` (least visible fraction for a 2D box), ``min_height_px`` (least height of a
    2D box; KITTI's evaluation ignores boxes under 25 px).
    """

    name = "synthetic"

    def __init__(self, spec: DatasetSpec, split: str | None = None):
        super().__init__(spec, split)
        self.options = o = _checked_options(resolve_options(spec, _OPTIONS), spec.source)
        n = o["sequences"]
        n_val = o["val_sequences"] if n > o["val_sequences"] else 0
        seqs = {None: range(n), "all": range(n), "train": range(n - n_val), "val": range(n - n_val, n)}
        if self.split not in seqs:
            raise ConfigError(f"unknown split {self.split!r}; splits: train, val, all", path=spec.source)
        self.keys = [(s, f) for s in seqs[self.split] for f in range(o["frames"])]
        self.calib_raw = synthetic_calib_raw()
        self.calibration = kitti_calibration(self.calib_raw, {"image_2": IMAGE_SIZE, "image_3": IMAGE_SIZE})
        self.lidar = LidarModel(rings=o["rings"], azimuth_steps=o["azimuth_steps"])
        self._cache: OrderedDict[int, tuple[Scenario, dict]] = OrderedDict()

    @classmethod
    def from_options(cls, split: str | None = None, classes: tuple[str, ...] = CLASSES, **options: Any):
        """Build without a YAML: ``SyntheticDataset.from_options(sequences=2, frames=10, seed=1)``."""
        return cls(DatasetSpec(format=cls.name, root=Path("."), classes=tuple(classes), options=options), split)

    def __len__(self) -> int:
        return len(self.keys)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle (e.g. to data-loader workers) without the per-sequence caches: rebuilt on arrival."""
        return {k: v for k, v in self.__dict__.items() if k != "_cache"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _cache=OrderedDict())

    def frame_key(self, i: int) -> tuple[str, int]:
        seq, idx = self.keys[i]
        return f"{seq:04d}", idx

    def check(self) -> list:
        """Nothing on disk to check: every frame is generated."""
        return []

    def _sequence(self, seq: int) -> tuple[Scenario, dict]:
        """The scenario of a sequence and its per-sequence caches (camera background), LRU-kept."""
        if seq not in self._cache:
            o = self.options
            T_velo_from_imu = self.calibration.T("lidar", "imu")
            scenario = make_scenario(o["seed"], seq, o["frames"], o["density"], T_velo_from_imu)
            self._cache[seq] = (scenario, {})
            if len(self._cache) > _CACHED_SEQUENCES:
                self._cache.popitem(last=False)
        self._cache.move_to_end(seq)
        return self._cache[seq]

    def _renderer(self, seq: int) -> CameraRenderer:
        scenario, extra = self._sequence(seq)
        if "renderer" not in extra:
            intr = self.calibration.cameras[CAMERA]
            rng = np.random.default_rng([self.options["seed"], seq, 11])
            T_cam_from_ego = self.calibration.T(CAMERA, "ego")
            extra["renderer"] = CameraRenderer(intr.K, intr.width, intr.height, T_cam_from_ego, scenario.road,
                                               scenario.T_road_from_ego(0.0), rng)  # fmt: skip
        return extra["renderer"]

    def load_frame(self, i: int, *, points: bool = True, images: bool = True) -> Frame:
        seq, idx = self.keys[i]
        scene = self._scene(seq, idx)
        truth = self._truth(scene)
        return Frame(
            dataset=self.name, sequence=f"{seq:04d}", index=idx, timestamp_s=idx * FRAME_PERIOD_S,
            class_names=self.class_names, points=PointCloud(scene["points"]) if points else None,
            images={CAMERA: self._render(seq, scene)} if images else {}, calibration=self.calibration,
            ego_pose=scene["ego_pose"], boxes3d=truth.boxes3d, boxes2d={CAMERA: truth.boxes2d},
        )  # fmt: skip

    def kitti_objects(self, i: int) -> KittiObjects:
        """KITTI label rows of frame ``i`` (what ``perception data synth`` writes to label_2)."""
        seq, idx = self.keys[i]
        return boxes3d_to_objects(self._truth(self._scene(seq, idx)).boxes3d, self.calibration, self.class_names)

    def _scene(self, seq: int, idx: int) -> dict[str, Any]:
        """Actor boxes, parts and the lidar sweep of one frame, all in the ego frame."""
        scenario, _ = self._sequence(seq)
        t = idx * FRAME_PERIOD_S
        T_road_from_ego = scenario.T_road_from_ego(t)
        T_ego_from_road = T_road_from_ego.inverse()
        boxes_road, velocity_road = scenario.actor_state(t)
        near = np.flatnonzero(np.hypot(*(boxes_road[:, :2] - T_road_from_ego.translation[:2]).T) < SENSE_RANGE_M)
        boxes = _to_ego(boxes_road[near], T_ego_from_road)
        actors = scenario.actors
        gait = actors.phase[near] + 2 * np.pi * np.abs(actors.speed[near]) * t / STRIDE_M
        parts = actor_parts(actors.kind[near], boxes, actors.colour[near], gait)
        b_near = np.hypot(*(scenario.statics[:, :2] - T_road_from_ego.translation[:2]).T) < SENSE_RANGE_M + 40
        statics = _to_ego(scenario.statics[b_near], T_ego_from_road)
        solid = parts["solid"]
        rng = np.random.default_rng([self.options["seed"], seq, idx, 1])
        points, _ = self.lidar.cast(
            np.concatenate([statics, parts["boxes"][solid]]),
            np.concatenate([scenario.static_reflectivity[b_near], actors.reflectivity[near][parts["owner"][solid]]]),
            -LIDAR_HEIGHT_M, lambda xy: _ground_reflectivity(scenario, T_road_from_ego, xy), rng,
        )  # fmt: skip
        return {
            "t": t, "idx": idx, "near": near, "boxes": boxes, "velocity": velocity_road[near] @ T_ego_from_road.rotation[:2, :2].T,
            "parts": parts, "statics": statics, "static_colour": scenario.static_colour[b_near],
            "static_windows": scenario.static_windows[b_near],
            "sun": T_ego_from_road.rotation @ scenario.sun_dir, "s_ego": scenario.ego_s(t), "points": points,
            "ego_pose": scenario.T_world_from_road @ T_road_from_ego, "kind": actors.kind[near],
            "track_id": actors.track_id[near],
        }  # fmt: skip

    def _truth(self, scene: dict[str, Any]) -> _Truth:
        """3D and 2D ground truth of the actors in the field of interest, KITTI-style attributes."""
        boxes, kind = scene["boxes"], scene["kind"]
        index = {c: j for j, c in enumerate(self.class_names)}
        labels = np.array([index.get(self.spec.class_map.get(c, c), -1) for c in np.array(CLASSES)[kind]], np.int64)
        x, y = boxes[:, 0], boxes[:, 1]
        keep = np.flatnonzero((x >= FIELD_X_M[0]) & (x <= FIELD_X_M[1]) & (np.abs(y) <= FIELD_Y_M) & (labels >= 0))
        keep = keep[np.argsort(x[keep], kind="stable")]
        gt = boxes[keep]
        truncated, visible, _ = box_visibility(gt, self.calibration, CAMERA)
        rects, valid = project_boxes_to_rects(gt, self.calibration, CAMERA)
        valid &= truncated < 1.0
        rects[~valid] = 0.0
        occluded = np.select([~valid, visible >= 0.8, visible >= 0.4, visible >= 0.1], [3, 0, 1, 2], 3)
        attrs = {"truncated": np.where(valid, truncated, 1.0), "occluded": occluded, "box2d": rects.astype(np.float64),
                 "visibility": visible, "num_points": _count_points(scene["points"][:, :3], gt)}  # fmt: skip
        boxes3d = Boxes3D(gt, labels[keep], track_ids=scene["track_id"][keep],
                          velocity_xy=scene["velocity"][keep], attributes=attrs)  # fmt: skip
        objs = boxes3d_to_objects(boxes3d, self.calibration, self.class_names)
        boxes3d = boxes3d.replace(attributes={**attrs, "alpha": objs.alpha, "difficulty": kitti_difficulty(objs)})
        tall = rects[:, 3] - rects[:, 1] >= self.options["min_height_px"]
        shown = valid & (visible >= self.options["min_visibility"]) & tall
        boxes2d = Boxes2D(rects[shown], labels[keep][shown], track_ids=scene["track_id"][keep][shown],
                          attributes={k: attrs[k][shown] for k in ("visibility", "occluded", "truncated")})  # fmt: skip
        return _Truth(boxes3d, boxes2d)

    def _render(self, seq: int, scene: dict[str, Any]) -> np.ndarray:
        """The camera image (H, W, 3) uint8 BGR of a frame: ground, shadows, then every structure and
        actor part in one painter's pass."""
        renderer = self._renderer(seq)
        image = renderer.background(scene["s_ego"])
        boxes, parts, statics = scene["boxes"], scene["parts"], scene["statics"]
        ahead = np.flatnonzero(boxes[:, 0] > -6.0)
        shadows = boxes[ahead] * [1, 1, 0, 1.08, 1.12, 0, 1] + [0, 0, 0.01 - LIDAR_HEIGHT_M, 0, 0, 0.01, 0]
        renderer.draw_boxes(image, shadows, np.full((len(ahead), 3), 0.17), scene["sun"], np.arange(len(ahead)))
        drawn = np.isin(parts["owner"], ahead)
        n = len(statics)
        renderer.draw_boxes(
            image, np.concatenate([statics, parts["boxes"][drawn]]),
            np.concatenate([scene["static_colour"], parts["colour"][drawn]]), scene["sun"],
            group=np.concatenate([np.arange(n), n + parts["owner"][drawn]]),
            bias_m=np.concatenate([np.zeros(n), parts["decal"][drawn] * 0.5]),
            windows=np.concatenate([scene["static_windows"], np.zeros(drawn.sum(), bool)]),
            discs=np.concatenate([np.zeros(n, np.int64), parts["wheel"][drawn]]),
        )  # fmt: skip
        rng = np.random.default_rng([self.options["seed"], seq, scene["idx"], 2])
        return renderer.add_noise(image, rng)


def write_synthetic_dataset(out: str | Path, frames: int = 50, sequences: int = 4, seed: int = 0,
                            progress: bool = True) -> Path:  # fmt: skip
    """Write the synthetic dataset in the KITTI object and tracking layouts (see ``synthetic_writer``)."""
    from perception.data.synthetic_writer import write_synthetic_dataset as write

    return write(out, frames=frames, sequences=sequences, seed=seed, progress=progress)


def _to_ego(boxes_road: np.ndarray, T_ego_from_road: SE3) -> np.ndarray:
    """Road-frame boxes (N, 7) -> ego frame (the road is flat and the ego level: yaw just shifts)."""
    xyz = T_ego_from_road.apply(boxes_road[:, :3])
    yaw = wrap_angle(boxes_road[:, 6] + T_ego_from_road.yaw_rad)
    return np.column_stack([xyz, boxes_road[:, 3:6], yaw])


def _ground_reflectivity(scenario: Scenario, T_road_from_ego: SE3, xy_ego: np.ndarray) -> np.ndarray:
    """Reflectivity of ground hits: by surface zone, lane paint much brighter."""
    xyz = np.column_stack([xy_ego, np.full(len(xy_ego), -LIDAR_HEIGHT_M)])
    s, d = scenario.road.to_sd(T_road_from_ego.apply(xyz)[:, :2])
    paint = paint_coverage(s, d)
    return _ZONE_REFLECTIVITY[surface_zone(d)] * (1 - paint) + _PAINT_REFLECTIVITY * paint


def _count_points(xyz: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(M,) points inside each box, as ``count_points_in_boxes`` but testing only the points whose
    x lies within each box's reach (a sweep has ~30k points, a frame ~30 boxes)."""
    order = np.argsort(xyz[:, 0], kind="stable")
    xs = xyz[order, 0]
    reach = np.hypot(boxes[:, 3], boxes[:, 4]) / 2 + 0.01
    lo, hi = np.searchsorted(xs, boxes[:, 0] - reach), np.searchsorted(xs, boxes[:, 0] + reach, side="right")
    return np.array([points_in_boxes(xyz[order[a:b]], boxes[k : k + 1]).sum() for k, (a, b) in enumerate(zip(lo, hi))],
                    dtype=np.int64).reshape(len(boxes))  # fmt: skip
