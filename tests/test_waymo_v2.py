"""Waymo v2 parquet loader: the real vehicle_pose component in ../shared/data, plus a segment of
every component written here in the v2 column layout (the excerpt has no lidar, boxes or images)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from perception.core import project_boxes_to_rects
from perception.data.base import DatasetSpec
from perception.data.registry import load_dataset
from perception.data.waymo import WaymoV2Dataset, track_id
from perception.errors import CorruptFileError, DataError

ROOT = Path(__file__).resolve().parents[1]
SEG = "seg_0001"
TS = (1_000_000, 1_100_000)
# Waymo camera (x forward, y left, z up) 1.5 m ahead of the vehicle origin, looking forward.
CAM_EXTRINSIC = [1.0, 0, 0, 1.5, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]


def _write(root: Path, component: str, columns: dict) -> Path:
    path = root / component / f"{SEG}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def _keys(n_per_frame: int) -> dict:
    return {
        "key.segment_context_name": [SEG] * 2 * n_per_frame,
        "key.frame_timestamp_micros": [t for t in TS for _ in range(n_per_frame)],
    }


def write_segment(root: Path) -> None:
    """Two frames; frame 1's car is 2 m further ahead than frame 0's."""
    pose = np.eye(4)
    _write(
        root,
        "vehicle_pose",
        {
            **_keys(1),
            "[VehiclePoseComponent].world_from_vehicle.transform": [pose.ravel().tolist(), (pose + 0).ravel().tolist()],
        },
    )
    ri = np.zeros((2, 4, 4), np.float32)
    ri[..., 0] = 10.0
    _write(root, "lidar", {**_keys(1), "key.laser_name": pa.array([1, 1], pa.int8()),
                           "[LiDARComponent].range_image_return1.values": [ri.ravel().tolist()] * 2,
                           "[LiDARComponent].range_image_return1.shape": [[2, 4, 4]] * 2})  # fmt: skip
    _write(root, "lidar_calibration", {"key.segment_context_name": [SEG], "key.laser_name": pa.array([1], pa.int8()),
                                       "[LiDARCalibrationComponent].extrinsic.transform": [np.eye(4).ravel().tolist()],
                                       "[LiDARCalibrationComponent].beam_inclination.min": [-0.2],
                                       "[LiDARCalibrationComponent].beam_inclination.max": [0.2],
                                       "[LiDARCalibrationComponent].beam_inclination.values": pa.array([None], pa.list_(pa.float64()))})  # fmt: skip
    box = {f"[LiDARBoxComponent].box.{k}": v for k, v in {
        "center.x": [10.0, 12.0], "center.y": [0.0, 0.0], "center.z": [0.0, 0.0], "size.x": [4.0, 4.0],
        "size.y": [2.0, 2.0], "size.z": [1.5, 1.5], "heading": [0.1, 0.1]}.items()}  # fmt: skip
    _write(root, "lidar_box", {**_keys(1), "key.laser_object_id": ["car-a", "car-a"], **box,
                               "[LiDARBoxComponent].type": pa.array([1, 1], pa.int8()),
                               "[LiDARBoxComponent].speed.x": [20.0, 20.0], "[LiDARBoxComponent].speed.y": [0.0, 0.0]})  # fmt: skip
    _write(root, "camera_calibration", {"key.segment_context_name": [SEG], "key.camera_name": pa.array([1], pa.int8()),
                                        **{f"[CameraCalibrationComponent].intrinsic.{k}": [v] for k, v in
                                           {"f_u": 200.0, "f_v": 200.0, "c_u": 160.0, "c_v": 120.0}.items()},
                                        "[CameraCalibrationComponent].extrinsic.transform": [CAM_EXTRINSIC],
                                        "[CameraCalibrationComponent].width": [320], "[CameraCalibrationComponent].height": [240]})  # fmt: skip
    jpeg = cv2.imencode(".jpg", np.full((240, 320, 3), 90, np.uint8))[1].tobytes()
    _write(
        root,
        "camera_image",
        {**_keys(1), "key.camera_name": pa.array([1, 1], pa.int8()), "[CameraImageComponent].image": [jpeg, jpeg]},
    )
    _write(root, "camera_box", {**_keys(1), "key.camera_name": pa.array([1, 1], pa.int8()), "key.camera_object_id": ["c0", "c1"],
                                "[CameraBoxComponent].type": pa.array([1, 1], pa.int8()),
                                **{f"[CameraBoxComponent].box.{k}": v for k, v in {"center.x": [160.0, 160.0], "center.y": [120.0, 120.0],
                                                                                    "size.x": [120.0, 100.0], "size.y": [40.0, 30.0]}.items()}})  # fmt: skip


def _spec(root: Path) -> DatasetSpec:
    return DatasetSpec(
        format="waymo_v2", root=root, classes=("Vehicle", "Pedestrian", "Cyclist"), class_map={"Sign": None}
    )


def test_frames_join_components_on_timestamp(tmp_path):
    write_segment(tmp_path)
    ds = WaymoV2Dataset(_spec(tmp_path))
    assert len(ds) == 2 and ds.frame_key(1) == (SEG, 1)
    f0, f1 = ds.load_frame(0), ds.load_frame(1)
    assert f1.boxes3d.xyz[0, 0] - f0.boxes3d.xyz[0, 0] == pytest.approx(2.0)
    assert f0.boxes3d.lwh.tolist() == [[4.0, 2.0, 1.5]] and f0.boxes3d.velocity_xy.tolist() == [[20.0, 0.0]]
    assert f0.boxes3d.track_ids[0] == f1.boxes3d.track_ids[0] == track_id("car-a")
    assert f0.images["FRONT"].shape == (240, 320, 3) and f0.timestamp_s == pytest.approx(1.0)
    np.testing.assert_allclose(f1.boxes2d["FRONT"].xyxy, [[110, 105, 210, 135]])
    assert len(f0.points) == 8
    # uniform beams: row 0 at the top (pitch 0.1), row 1 at -0.1; column 1 at azimuth pi / 4
    np.testing.assert_allclose(
        np.sort(f0.points.xyz[:, 2]), [-10 * np.sin(0.1)] * 4 + [10 * np.sin(0.1)] * 4, atol=1e-4
    )


def test_box_projects_onto_camera_centre(tmp_path):
    """A car on the camera's axis projects to a rectangle centred on the principal point."""
    write_segment(tmp_path)
    f = WaymoV2Dataset(_spec(tmp_path)).load_frame(0, points=False)
    uv, depth = f.calibration.project(f.boxes3d.xyz, "FRONT")
    np.testing.assert_allclose(uv[0], [160, 120], atol=1e-6)
    assert depth[0] == pytest.approx(10 - 1.5)
    rect, valid = project_boxes_to_rects(f.boxes3d.xyz_lwh_yaw, f.calibration, "FRONT")
    assert valid[0] and rect[0, 0] < 160 < rect[0, 2] and rect[0, 1] < 120 < rect[0, 3]
    # the nearest corners are about 10 - 1.5 - 2.1 m from the camera: the rectangle is about that tall
    assert rect[0, 3] - rect[0, 1] == pytest.approx(200 * 1.5 / 6.4, rel=0.05)


def test_missing_column_names_file_and_column(tmp_path):
    write_segment(tmp_path)
    t = pq.read_table(tmp_path / "lidar_box" / f"{SEG}.parquet").drop_columns(["[LiDARBoxComponent].box.heading"])
    pq.write_table(t, tmp_path / "lidar_box" / f"{SEG}.parquet")
    ds = WaymoV2Dataset(_spec(tmp_path))
    with pytest.raises(
        CorruptFileError,
        match=r"lidar_box/seg_0001.parquet: missing column\(s\) \['\[LiDARBoxComponent\].box.heading'\]",
    ):
        ds.load_frame(0)
    assert len(ds.check()) == 2  # both frames report it


def test_optional_components_and_bad_parquet(tmp_path):
    write_segment(tmp_path)
    for component in ("lidar", "camera_image", "camera_box", "lidar_box"):
        (tmp_path / component / f"{SEG}.parquet").unlink()
    f = WaymoV2Dataset(_spec(tmp_path)).load_frame(0)
    assert f.points is None and f.images == {} and f.boxes3d is None
    (tmp_path / "camera_calibration" / f"{SEG}.parquet").write_bytes(b"not parquet")
    with pytest.raises(CorruptFileError, match="camera_calibration/seg_0001.parquet: not a readable parquet file"):
        WaymoV2Dataset(_spec(tmp_path)).load_frame(0)
    with pytest.raises(DataError, match="vehicle_pose component folder not found"):
        WaymoV2Dataset(_spec(tmp_path / "nowhere"))


def test_real_vehicle_pose_component(shared_data):
    ds = load_dataset(ROOT / "datasets" / "waymo_v2.yaml")
    assert len(ds) == 199
    path = shared_data / "waymo/v2/vehicle_pose/10023947602400723454_1120_000_1140_000.parquet"
    t = pq.read_table(path)
    order = np.argsort(t.column("key.frame_timestamp_micros").to_numpy())
    want = np.array(t.column("[VehiclePoseComponent].world_from_vehicle.transform").to_pylist()[order[5]]).reshape(4, 4)
    f = ds.load_frame(5)
    np.testing.assert_allclose(f.ego_pose.matrix, want)
    assert f.points is None and f.boxes3d is None
    assert ds.check() == []
