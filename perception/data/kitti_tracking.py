"""KITTI multi-object tracking: sequences of ``Frame``s with track ids and, when oxts exist, ego poses.

Exercised by ``perception data info datasets/kitti_tracking.yaml``. Layout under ``root``::

    training/label_02/0000.txt           all frames of sequence 0000: ``frame track_id type ...``
    training/calib/0000.txt              R_rect / Tr_velo_cam (release) or R0_rect / Tr_velo_to_cam
    training/velodyne/0000/000000.bin    optional
    training/image_02/0000/000000.png    optional
    training/oxts/0000.txt               optional, one GPS/IMU row per frame
    testing/...                          the same without label_02

Frames of a sequence are ``0 .. last`` where ``last`` is the largest frame number seen in the
velodyne, image_02 and label files (KITTI tracking frames are contiguous from 0); a frame
without a .bin has ``points=None`` and one without a PNG no image. A split names a seqmap file
(``seq empty first last`` per line, relative to root), which also fixes each frame range, or
lists sequence ids. Time stamps are ``frame / 10`` s (10 Hz sweeps).

Ego poses follow the devkit's ``convertOxtsToPose``: latitude/longitude to metres by a
Mercator projection whose scale is ``cos(lat)`` of the sequence's frame 0, rotation
``Rz(yaw) Ry(pitch) Rx(roll)``, then made relative to frame 0, so ``world`` is the IMU frame at
frame 0. ``T_world_from_ego = T_world_from_imu @ T_imu_from_velo`` with ``Tr_imu_to_velo`` from
the calib file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perception.core import SE3, Boxes2D, Frame, PointCloud
from perception.data.base import DatasetSpec, DriveDataset
from perception.data.kitti import collect, png_size, read_image, resolve_options
from perception.data.kitti_format import (
    KITTI_IMAGE_SIZE,
    KittiObjects,
    kitti_calibration,
    objects_to_boxes3d,
    read_calib_file,
    read_points_bin,
    read_rows,
    read_tracking_label_file,
    split_folder,
)
from perception.errors import ConfigError, CorruptFileError, DataError

_OPTIONS = {"cameras": ["image_02"]}
_CAMERA_OF_FOLDER = {"image_02": "image_2", "image_03": "image_3"}  # Frame/Calibration names, as for KITTI object
_EARTH_RADIUS_M = 6378137.0
_OXTS_FIELDS = 30
_FRAME_PERIOD_S = 0.1


def read_seqmap(path: Path) -> dict[str, tuple[int, int]]:
    """Sequence -> (first, last) frame, inclusive, from a ``seq empty first last`` file."""
    out = {}
    for line_no, parts in read_rows(path):
        if len(parts) != 4 or not (parts[0].isdigit() and parts[2].isdigit() and parts[3].isdigit()):
            raise CorruptFileError(f"expected 'seq empty first last', got {' '.join(parts)!r}", path=path, line=line_no)
        out[parts[0]] = (int(parts[2]), int(parts[3]))
    return out


def read_oxts_file(path: Path) -> np.ndarray:
    """(F, 30) float64 oxts rows (lat, lon, alt, roll, pitch, yaw, ... in degrees, metres, radians)."""
    rows = read_rows(path)
    for line_no, parts in rows:
        if len(parts) != _OXTS_FIELDS:
            raise CorruptFileError(f"expected {_OXTS_FIELDS} oxts values, got {len(parts)}", path=path, line=line_no)
    try:
        return np.array([[float(v) for v in parts] for _, parts in rows]).reshape(-1, _OXTS_FIELDS)
    except ValueError:
        raise CorruptFileError("oxts values are not all numbers", path=path) from None


def oxts_to_poses(oxts: np.ndarray) -> np.ndarray:
    """(F, 4, 4) ``T_world_from_imu`` per oxts row, world = IMU frame of row 0 (devkit convention).

    Args:
        oxts: (F, >=6) rows starting ``lat_deg, lon_deg, alt_m, roll_rad, pitch_rad, yaw_rad``.
    """
    lat, lon, alt = oxts[:, 0], oxts[:, 1], oxts[:, 2]
    scale = np.cos(np.deg2rad(lat[0]))
    tx = scale * np.deg2rad(lon) * _EARTH_RADIUS_M
    ty = scale * _EARTH_RADIUS_M * np.log(np.tan(np.deg2rad(90.0 + lat) / 2.0))
    cr, sr = np.cos(oxts[:, 3]), np.sin(oxts[:, 3])
    cp, sp = np.cos(oxts[:, 4]), np.sin(oxts[:, 4])
    cy, sy = np.cos(oxts[:, 5]), np.sin(oxts[:, 5])
    poses = np.tile(np.eye(4), (len(oxts), 1, 1))
    # R = Rz(yaw) @ Ry(pitch) @ Rx(roll), written out
    poses[:, 0, :3] = np.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], axis=1)
    poses[:, 1, :3] = np.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], axis=1)
    poses[:, 2, :3] = np.stack([-sp, cp * sr, cp * cr], axis=1)
    # relative to row 0: subtract translations first, Mercator metres are ~1e6 and would lose precision
    poses[:, :3, 3] = np.stack([tx - tx[0], ty - ty[0], alt - alt[0]], axis=1)
    return np.linalg.inv(poses[0]) @ poses


class KittiTrackingDataset(DriveDataset):
    """Frames of KITTI tracking sequences in time order; ``kitti_objects(i)`` gives the raw rows.

    Options: ``cameras`` (image folders read when ``images=True``).
    """

    name = "kitti_tracking"

    def __init__(self, spec: DatasetSpec, split: str | None = None):
        super().__init__(spec, split)
        self.options = resolve_options(spec, _OPTIONS)
        self.folder = split_folder(spec.root, self.split)
        self.labelled = (self.folder / "label_02").is_dir()
        self._cache: dict[tuple[str, str], object] = {}
        self.keys = [(seq, f) for seq, (first, last) in self._ranges().items() for f in range(first, last + 1)]

    def _ranges(self) -> dict[str, tuple[int, int]]:
        entry = self.spec.splits.get(self.split) if self.split else None
        if self.split and entry is None and self.spec.splits:
            raise ConfigError(
                f"unknown split {self.split!r}; splits: {sorted(self.spec.splits)}", path=self.spec.source
            )
        if isinstance(entry, str):
            return read_seqmap(self.spec.root / entry)
        seqs = [f"{int(s):04d}" for s in entry] if entry is not None else self._all_sequences()
        if not seqs:
            raise DataError("no sequences found (looked for label_02, velodyne, image_02, calib)", path=self.folder)
        return {s: (0, self._last_frame(s)) for s in seqs}

    def _all_sequences(self) -> list[str]:
        found = {p.stem for sub in ("label_02", "calib") for p in (self.folder / sub).glob("*.txt")}
        found |= {p.name for sub in ("velodyne", "image_02") for p in (self.folder / sub).glob("*") if p.is_dir()}
        return sorted(found)

    def _last_frame(self, seq: str) -> int:
        last = [
            int(p.stem) for sub in ("velodyne", *self.options["cameras"]) for p in (self.folder / sub / seq).glob("*.*")
        ]
        if self.labelled:
            frames = self._sequence_objects(seq).frame
            last += [int(frames.max())] if len(frames) else []
        if not last:
            raise DataError(f"sequence {seq}: no labels, sweeps or images to count its frames", path=self.folder)
        return max(last)

    def __len__(self) -> int:
        return len(self.keys)

    def frame_key(self, i: int) -> tuple[str, int]:
        return self.keys[i]

    def _cached(self, kind: str, seq: str, read):
        """Per-sequence files are read once: a sequence's label, calib and oxts files serve all its frames."""
        key = (kind, seq)
        if key not in self._cache:
            self._cache[key] = read()
        return self._cache[key]

    def _sequence_objects(self, seq: str) -> KittiObjects:
        return self._cached("label", seq, lambda: read_tracking_label_file(self.folder / "label_02" / f"{seq}.txt"))

    def _sequence_calib(self, seq: str) -> dict[str, np.ndarray]:
        return self._cached("calib", seq, lambda: read_calib_file(self.folder / "calib" / f"{seq}.txt"))

    def _sequence_poses(self, seq: str) -> np.ndarray | None:
        path = self.folder / "oxts" / f"{seq}.txt"
        return self._cached("oxts", seq, lambda: oxts_to_poses(read_oxts_file(path)) if path.is_file() else None)

    def kitti_objects(self, i: int) -> KittiObjects:
        """Label rows of frame ``i`` (``frame``, ``track_id``, DontCare included); empty when unlabelled."""
        if not self.labelled:
            return KittiObjects.empty(tracking=True)
        seq, frame = self.keys[i]
        objs = self._sequence_objects(seq)
        return objs[objs.frame == frame]

    def load_frame(self, i: int, *, points: bool = True, images: bool = True) -> Frame:
        seq, frame = self.keys[i]
        loaded = self._images(seq, frame) if images else {}
        sizes = {c: (im.shape[1], im.shape[0]) for c, im in loaded.items()} or self._image_sizes(seq)
        calib = kitti_calibration(self._sequence_calib(seq), sizes)
        boxes3d, boxes2d = None, {}
        if self.labelled:
            path = self.folder / "label_02" / f"{seq}.txt"
            boxes3d, _ = objects_to_boxes3d(self.kitti_objects(i), calib, self.class_names, self.spec.class_map, path)
            boxes2d = {"image_2": Boxes2D(boxes3d.attributes["box2d"], boxes3d.labels, track_ids=boxes3d.track_ids)}
        bin_path = self.folder / "velodyne" / seq / f"{frame:06d}.bin"
        return Frame(
            dataset=self.name, sequence=seq, index=frame, timestamp_s=frame * _FRAME_PERIOD_S,
            class_names=self.class_names,
            points=PointCloud(read_points_bin(bin_path)) if points and bin_path.is_file() else None,
            images=loaded, calibration=calib,
            ego_pose=self._ego_pose(seq, frame, calib), boxes3d=boxes3d, boxes2d=boxes2d,
        )  # fmt: skip

    def check(self) -> list[DataError]:
        """Read every file (per sequence: calib, labels and their classes, oxts; per frame: sweeps,
        images) and collect every problem."""
        problems: list[DataError] = []
        self._cache.clear()  # read every file anew
        for seq, indices in self.sequences().items():
            collect(problems, self._check_sequence_files, seq, self.keys[indices[-1]][1])
            for i in indices:
                frame = self.keys[i][1]
                bin_path = self.folder / "velodyne" / seq / f"{frame:06d}.bin"
                if bin_path.is_file():
                    collect(problems, read_points_bin, bin_path)
                collect(problems, self._images, seq, frame)
        return problems

    def _check_sequence_files(self, seq: str, last_frame: int) -> None:
        calib = kitti_calibration(self._sequence_calib(seq))
        if self.labelled:
            path = self.folder / "label_02" / f"{seq}.txt"
            objects_to_boxes3d(self._sequence_objects(seq), calib, self.class_names, self.spec.class_map, path)
        self._ego_pose(seq, last_frame, calib)

    def _ego_pose(self, seq: str, frame: int, calib) -> SE3 | None:
        poses = self._sequence_poses(seq)
        if poses is None:
            return None
        path = self.folder / "oxts" / f"{seq}.txt"
        if frame >= len(poses):
            raise DataError(f"no oxts row for frame {frame} ({len(poses)} rows)", path=path)
        if "imu" not in calib.extrinsics:
            raise DataError("oxts present but calib has no Tr_imu_to_velo / Tr_imu_velo", path=path)
        return SE3(poses[frame]) @ calib.T("imu", "ego")

    def _images(self, seq: str, frame: int) -> dict[str, np.ndarray]:
        """Camera name (``image_2``...) -> image, for the cameras that have a PNG of this frame."""
        paths = {
            _CAMERA_OF_FOLDER.get(c, c): self.folder / c / seq / f"{frame:06d}.png" for c in self.options["cameras"]
        }
        return {c: read_image(p) for c, p in paths.items() if p.is_file()}

    def _image_sizes(self, seq: str) -> dict[str, tuple[int, int]]:
        """Camera name -> (width, height) from the first PNG of the sequence (all share one size)."""

        def measure() -> dict[str, tuple[int, int]]:
            firsts = {
                _CAMERA_OF_FOLDER.get(c, c): min((self.folder / c / seq).glob("*.png"), default=None)
                for c in self.options["cameras"]
            }
            return {c: (p and png_size(p)) or KITTI_IMAGE_SIZE for c, p in firsts.items()}

        return self._cached("sizes", seq, measure)
