"""``perception data synth``: the synthetic dataset written in the KITTI object and tracking layouts.

Layout under ``out``::

    object/training/{velodyne,image_2,calib,label_2}/NNNNNN.*   every frame of every sequence
    object/training/synthetic_map.txt                           NNNNNN -> sequence frame
    object/ImageSets/{train,val,trainval}.txt                   split by sequence
    tracking/training/velodyne/SSSS/FFFFFF.bin, image_02/SSSS/FFFFFF.png  (hard links to the above)
    tracking/training/{label_02,calib,oxts}/SSSS.txt
    kitti_object.yaml, kitti_tracking.yaml                       dataset YAMLs for both layouts

oxts rows follow the KITTI raw devkit: ``lat lon alt roll pitch yaw vn ve vf vl vu ax ay az af al
au wx wy wz wf wl wu pos_acc vel_acc navstat numsats posmode velmode orimode``. The poses are
placed on a Mercator map (scale ``cos(lat)`` of frame 0) so that the devkit's
``convertOxtsToPose``, made relative to frame 0, gives back exactly the ego poses of the frames.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from perception.core import SE3, rotation_z
from perception.data.kitti_format import (
    boxes3d_to_objects,
    format_label_lines,
    with_frame,
    write_calib_file,
    write_label_file,
    write_points_bin,
)
from perception.data.synthetic import CAMERA, SyntheticDataset
from perception.data.synthetic_scene import CLASSES
from perception.errors import CorruptFileError, DataError
from perception.files import atomic_path, atomic_write

EARTH_RADIUS_M = 6378137.0
_ORIGIN_LAT_LON_ALT = (49.011, 8.416, 115.0)  # Karlsruhe-like, so the numbers look like KITTI's


def oxts_rows(T_world_from_imu: list[SE3], speed_mps: float, yaw_rate: float, rng: np.random.Generator) -> np.ndarray:
    """(F, 30) oxts rows whose devkit poses (relative to row 0) are ``T_world_from_imu``.

    The map frame is the world frame turned by a random heading and moved to a random spot near
    the origin latitude/longitude, as a GPS/IMU would report a drive.
    """
    lat0 = _ORIGIN_LAT_LON_ALT[0] + rng.uniform(-0.01, 0.01)
    lon0 = _ORIGIN_LAT_LON_ALT[1] + rng.uniform(-0.01, 0.01)
    scale = np.cos(np.deg2rad(lat0))
    origin = [scale * np.deg2rad(lon0) * EARTH_RADIUS_M,
              scale * EARTH_RADIUS_M * np.log(np.tan(np.deg2rad(90.0 + lat0) / 2.0)), _ORIGIN_LAT_LON_ALT[2]]  # fmt: skip
    T_map_from_world = SE3.from_rt(rotation_z(rng.uniform(-np.pi, np.pi)), origin)
    rows = np.zeros((len(T_world_from_imu), 30))
    for i, T in enumerate(T_world_from_imu):
        T_map = T_map_from_world @ T
        tx, ty, tz = T_map.translation
        yaw = T_map.yaw_rad
        lat = np.rad2deg(2.0 * np.arctan(np.exp(ty / (scale * EARTH_RADIUS_M)))) - 90.0
        lon = np.rad2deg(tx / (scale * EARTH_RADIUS_M))
        lateral_acc = speed_mps * yaw_rate * speed_mps
        rows[i, :6] = [lat, lon, tz, 0.0, 0.0, yaw]
        rows[i, 6:11] = [speed_mps * np.sin(yaw), speed_mps * np.cos(yaw), speed_mps, 0.0, 0.0]
        rows[i, 11:17] = [0.0, lateral_acc, 9.81, 0.0, lateral_acc, 9.81]
        rows[i, 17:23] = [0.0, 0.0, yaw_rate, 0.0, 0.0, yaw_rate]
        rows[i, 23:30] = [0.05, 0.02, 4, 11, 5, 5, 6]
    return rows


def format_oxts(rows: np.ndarray) -> str:
    """Text of an oxts file: lat/lon with 12 decimals (sub-millimetre), integers for the status fields."""
    lines = []
    for r in rows:
        lines.append(
            " ".join([f"{v:.12f}" for v in r[:2]] + [f"{v:.9f}" for v in r[2:25]] + [f"{int(v)}" for v in r[25:]])
        )
    return "\n".join(lines) + "\n"


def tracking_truncation(truncated: np.ndarray) -> np.ndarray:
    """KITTI tracking truncation levels: 0 in the image, 1 truncated, 2 outside the image."""
    return np.select([truncated < 1e-3, truncated > 1.0 - 1e-3], [0, 2], 1).astype(np.float64)


def _write_image(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise CorruptFileError("could not write image", path=path)


def _link(src: Path, dst: Path) -> None:
    """Hard-link the tracking copy of a file (same bytes as the object copy); copy where links fail."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _write_yamls(out: Path, splits: dict[str, list[int]]) -> None:
    classes = "[" + ", ".join(CLASSES) + "]"
    with atomic_write(out / "kitti_object.yaml") as f:
        f.write("# Synthetic data in the KITTI object layout, written by `perception data synth`.\n"
                "format: kitti\nroot: object\nsplit:\nsplits:\n"
                + "".join(f"  {s}: ImageSets/{s}.txt\n" for s in splits)
                + f"classes: {classes}\nclass_map: {{DontCare: null}}\n")  # fmt: skip
    with atomic_write(out / "kitti_tracking.yaml") as f:
        f.write("# Synthetic data in the KITTI tracking layout, written by `perception data synth`.\n"
                "format: kitti_tracking\nroot: tracking\nsplit:\nsplits:\n"
                + "".join(f"  {s}: {seqs}\n" for s, seqs in splits.items())
                + f"classes: {classes}\nclass_map: {{DontCare: null}}\n")  # fmt: skip


def write_synthetic_dataset(out: str | Path, frames: int = 50, sequences: int = 4, seed: int = 0,
                            progress: bool = True) -> Path:  # fmt: skip
    """Generate ``sequences`` x ``frames`` synthetic frames and write both KITTI layouts to ``out``.

    The last quarter of the sequences (at least one, when there are two or more) form ``val``.
    Every file is written atomically. Returns ``out``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError("output folder exists and is not a folder", path=out)
    n_val = max(1, sequences // 4) if sequences > 1 else 0
    ds = SyntheticDataset.from_options(sequences=sequences, frames=frames, seed=seed, val_sequences=n_val)
    obj, trk = out / "object" / "training", out / "tracking" / "training"
    splits = {"train": list(range(sequences - n_val)), "val": list(range(sequences - n_val, sequences))}
    splits = {s: v for s, v in splits.items() if v} | {"trainval": list(range(sequences))}
    ids: dict[int, list[str]] = {}
    rows: list[str] = []
    imu_poses: list[SE3] = []
    for i in tqdm(range(len(ds)), desc="synthetic frames", unit="frame", disable=not progress):
        seq, idx = ds.keys[i]
        frame = ds.load_frame(i)
        objs = boxes3d_to_objects(frame.boxes3d, frame.calibration, ds.class_names)
        name, seq_name = f"{i:06d}", f"{seq:04d}"
        ids.setdefault(seq, []).append(name)
        write_points_bin(obj / "velodyne" / f"{name}.bin", frame.points.data)
        _write_image(obj / "image_2" / f"{name}.png", frame.images[CAMERA])
        write_calib_file(obj / "calib" / f"{name}.txt", ds.calib_raw)
        write_label_file(obj / "label_2" / f"{name}.txt", objs)
        _link(obj / "velodyne" / f"{name}.bin", trk / "velodyne" / seq_name / f"{idx:06d}.bin")
        _link(obj / "image_2" / f"{name}.png", trk / "image_02" / seq_name / f"{idx:06d}.png")
        rows += format_label_lines(with_frame(replace(objs, truncated=tracking_truncation(objs.truncated)), idx))
        imu_poses.append(frame.ego_pose @ frame.calibration.T("ego", "imu"))
        if idx == frames - 1:
            _finish_sequence(ds, trk, seq, rows, imu_poses)
            rows, imu_poses = [], []
    with atomic_write(obj / "synthetic_map.txt") as f:
        f.write("".join(f"{n} {s:04d} {j:06d}\n" for s, names in ids.items() for j, n in enumerate(names)))
    for split, seqs in splits.items():
        with atomic_write(out / "object" / "ImageSets" / f"{split}.txt") as f:
            f.write("".join(n + "\n" for s in seqs for n in ids[s]))
    _write_yamls(out, splits)
    return out


def _finish_sequence(ds: SyntheticDataset, trk: Path, seq: int, rows: list[str], imu_poses: list[SE3]) -> None:
    """Per-sequence tracking files: all label rows, the calibration, the oxts rows."""
    scenario, _ = ds._sequence(seq)
    with atomic_write(trk / "label_02" / f"{seq:04d}.txt") as f:
        f.write("".join(r + "\n" for r in rows))
    write_calib_file(trk / "calib" / f"{seq:04d}.txt", ds.calib_raw)
    rng = np.random.default_rng([ds.options["seed"], seq, 13])
    oxts = oxts_rows(imu_poses, scenario.ego_speed, scenario.ego_speed * scenario.road.kappa, rng)
    with atomic_write(trk / "oxts" / f"{seq:04d}.txt") as f:
        f.write(format_oxts(oxts))
