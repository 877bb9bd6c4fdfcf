"""Argoverse 2 loader: the two real logs in ../shared/data, plus tiny logs written here in the
documented AV2 layout (camera images and broken files, which the excerpt does not have)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pytest
from pyarrow import feather

from perception.core import count_points_in_boxes, project_boxes_to_rects
from perception.data.argoverse2 import Argoverse2Dataset, quaternion_yaw
from perception.data.base import DatasetSpec
from perception.data.registry import load_dataset
from perception.errors import CorruptFileError, DataError, UnknownClassError

ROOT = Path(__file__).resolve().parents[1]
YAML = ROOT / "datasets" / "argoverse2.yaml"
LOG_A = "7fab2350-7eaf-3b7e-a39d-6937a4c1bede"


@pytest.fixture(scope="module")
def real(shared_data):
    return load_dataset(YAML)


def test_real_logs_one_frame_per_sweep(real):
    assert len(real) == 3
    assert real.frame_key(1) == (LOG_A, 1)
    assert real.sequences() == {LOG_A: [0, 1], "adcf7d18-0510-35b0-a2fa-b4cea13a6d76": [2]}


def test_real_points_fall_in_their_boxes_as_annotated(real):
    """Our count of sweep points per cuboid equals AV2's num_interior_pts for every box."""
    for i in range(len(real)):
        f = real.load_frame(i, images=False)
        counts = count_points_in_boxes(f.points.xyz, f.boxes3d.xyz_lwh_yaw)
        assert len(f.boxes3d) > 40
        np.testing.assert_array_equal(counts, f.boxes3d.attributes["num_points"])


def test_real_frame_fields(real):
    f = real.load_frame(0, images=False)
    assert f.points.channels == ("x", "y", "z", "intensity")
    assert 0 <= f.points.data[:, 3].min() and f.points.data[:, 3].max() <= 1
    assert f.timestamp_s == pytest.approx(315966265.259836, abs=1e-6)
    np.testing.assert_allclose(f.ego_pose.translation, [5223.8137574, 2385.3730592, 69.0697341], atol=1e-4)
    assert f.class_names[f.boxes3d.labels[0]] in f.class_names
    assert len(set(f.boxes3d.track_ids.tolist())) == len(f.boxes3d)


def test_real_boxes_ahead_project_into_the_front_camera(real):
    f = real.load_frame(0, images=False)
    b = f.boxes3d.xyz_lwh_yaw
    ahead = (b[:, 0] > 5) & (np.abs(b[:, 1]) < 0.3 * b[:, 0])
    assert ahead.sum() >= 3
    rects, valid = project_boxes_to_rects(b[ahead], f.calibration, "ring_front_center")
    assert valid.all()
    cx = (rects[:, 0] + rects[:, 2]) / 2
    # a box left of the ego axis (y > 0) lands left of the principal point, and vice versa
    principal_x = f.calibration.cameras["ring_front_center"].K[0, 2]
    assert (np.sign(principal_x - cx) == np.sign(b[ahead, 1])).mean() >= 0.9


def test_real_check_reports_missing_calibration(real):
    problems = real.check()
    assert len(problems) == 1 and "calibration" in str(problems[0]) and "adcf7d18" in str(problems[0])


def test_quaternion_yaw():
    yaw = np.array([0.3, -2.0, 3.0])
    q = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], axis=1)
    np.testing.assert_allclose(quaternion_yaw(q), yaw)


def _pose_table(ts, **extra):
    n = len(ts)
    cols = {"timestamp_ns": ts, "qw": [1.0] * n, "qx": [0.0] * n, "qy": [0.0] * n, "qz": [0.0] * n,
            "tx_m": [1.0] * n, "ty_m": [2.0] * n, "tz_m": [0.0] * n}  # fmt: skip
    return pa.table({**cols, **extra})


def _write_log(root: Path, *, category: str = "PEDESTRIAN") -> Path:
    """A one-sweep log with one camera: a box 10 m ahead; camera at the ego origin looking forward."""
    log = root / "val" / "log0"
    (log / "sensors" / "lidar").mkdir(parents=True)
    (log / "calibration").mkdir()
    ts = 1_000_000_000
    pts = pa.table({"x": pa.array([10.0, 50.0], pa.float16()), "y": pa.array([0.0, 0.0], pa.float16()),
                    "z": pa.array([0.5, 0.5], pa.float16()), "intensity": pa.array([255, 0], pa.uint8()),
                    "laser_number": pa.array([0, 1], pa.uint8()), "offset_ns": pa.array([0, 0], pa.int32())})  # fmt: skip
    feather.write_feather(pts, log / "sensors" / "lidar" / f"{ts}.feather")
    feather.write_feather(_pose_table([ts]), log / "city_SE3_egovehicle.feather")
    ann = {"timestamp_ns": [ts], "track_uuid": ["a"], "category": [category], "length_m": [2.0], "width_m": [1.0],
           "height_m": [1.0], "qw": [1.0], "qx": [0.0], "qy": [0.0], "qz": [0.0], "tx_m": [10.0], "ty_m": [0.0],
           "tz_m": [0.5], "num_interior_pts": [1]}  # fmt: skip
    feather.write_feather(pa.table(ann), log / "annotations.feather")
    # camera frame (x right, y down, z forward) in the ego frame: R columns = camera axes in ego
    q_cam = [0.5, -0.5, 0.5, -0.5]
    ext = {"sensor_name": ["ring_front_center"], "qw": [q_cam[0]], "qx": [q_cam[1]], "qy": [q_cam[2]],
           "qz": [q_cam[3]], "tx_m": [0.0], "ty_m": [0.0], "tz_m": [0.0]}  # fmt: skip
    feather.write_feather(pa.table(ext), log / "calibration" / "egovehicle_SE3_sensor.feather")
    intr = {"sensor_name": ["ring_front_center"], "fx_px": [100.0], "fy_px": [100.0], "cx_px": [80.0],
            "cy_px": [60.0], "k1": [0.0], "k2": [0.0], "k3": [0.0], "height_px": pa.array([120], pa.uint16()),
            "width_px": pa.array([160], pa.uint16())}  # fmt: skip
    feather.write_feather(pa.table(intr), log / "calibration" / "intrinsics.feather")
    cam = log / "sensors" / "cameras" / "ring_front_center"
    cam.mkdir(parents=True)
    for t, value in ((ts - 60_000_000, 10), (ts + 20_000_000, 200)):  # the second is nearer to the sweep
        cv2.imwrite(str(cam / f"{t}.jpg"), np.full((120, 160, 3), value, np.uint8))
    return log


def _spec(root: Path, **kw) -> DatasetSpec:
    return DatasetSpec(format="argoverse2", root=root, classes=("PEDESTRIAN", "REGULAR_VEHICLE"), split="val",
                       splits={"val": "val"}, **kw)  # fmt: skip


def test_written_log_camera_sync_and_projection(tmp_path):
    _write_log(tmp_path)
    f = Argoverse2Dataset(_spec(tmp_path)).load_frame(0)
    assert f.images["ring_front_center"].mean() > 150  # nearest timestamp picked
    np.testing.assert_allclose(f.points.data[0], [10, 0, 0.5, 1.0])
    rect, valid = project_boxes_to_rects(f.boxes3d.xyz_lwh_yaw, f.calibration, "ring_front_center")
    assert valid[0]
    # front face at x = 9 m, y in [-0.5, 0.5], z in [0, 1] (above the camera: image rows above cy = 60)
    np.testing.assert_allclose(rect[0], [80 - 100 * 0.5 / 9, 60 - 100 * 1 / 9, 80 + 100 * 0.5 / 9, 60], atol=1e-3)


def test_common_classes_use_default_map(tmp_path):
    _write_log(tmp_path, category="REGULAR_VEHICLE")
    spec = DatasetSpec(format="argoverse2", root=tmp_path, classes=("Car", "Pedestrian"), split="val")
    f = Argoverse2Dataset(spec).load_frame(0, images=False)
    assert f.boxes3d.labels.tolist() == [0]


def test_unknown_category_names_the_file(tmp_path):
    log = _write_log(tmp_path, category="SPACESHIP")
    with pytest.raises(UnknownClassError, match="annotations.feather.*SPACESHIP"):
        Argoverse2Dataset(_spec(tmp_path)).load_frame(0)
    assert log.exists()


def test_wrong_schema_and_missing_files_all_reported(tmp_path):
    log = _write_log(tmp_path)
    feather.write_feather(pa.table({"timestamp_ns": [1]}), log / "annotations.feather")
    (log / "city_SE3_egovehicle.feather").unlink()
    ds = Argoverse2Dataset(_spec(tmp_path))
    with pytest.raises(CorruptFileError, match=r"annotations.feather: missing column\(s\) \['track_uuid'"):
        ds._annotations(log)
    problems = ds.check()
    text = "\n".join(map(str, problems))
    assert "city_SE3_egovehicle.feather: file not found" in text and "annotations.feather: missing column" in text
    assert all(isinstance(p, DataError) for p in problems)


def test_not_a_feather_file(tmp_path):
    log = _write_log(tmp_path)
    sweep = next((log / "sensors" / "lidar").glob("*.feather"))
    sweep.write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match="not a readable feather file"):
        Argoverse2Dataset(_spec(tmp_path)).load_frame(0)
