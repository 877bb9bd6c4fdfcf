"""Waymo v1 loader and TFRecord framing: the two real records in ../shared/data (cameras,
calibrations, labels; their lidar range images were stripped upstream), plus records written
here (a range image with known geometry, broken framing and CRCs)."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from perception.core import iou2d, project_boxes_to_rects
from perception.data.base import DatasetSpec
from perception.data.registry import load_dataset
from perception.data.tfrecord import crc32c, masked_crc32c, read_records, record_index, write_records
from perception.data.waymo import WaymoDataset, track_id
from perception.data.waymo_proto import CAMERA_NAMES, MESSAGES, Frame
from perception.errors import CorruptFileError, DataError

ROOT = Path(__file__).resolve().parents[1]


def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0
    assert crc32c(b"\0" * 32) == 0x8A9136AA  # RFC 3720 B.4 test vector


def test_crc32c_lanes_match_bytewise():
    data = os.urandom(50_003)  # long enough for the numpy path, not a multiple of the chunk
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    c = 0xFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    assert crc32c(data) == c ^ 0xFFFFFFFF


@pytest.fixture(scope="module")
def real(shared_data):
    return load_dataset(ROOT / "datasets" / "waymo.yaml")


def test_real_records_decode(real):
    assert len(real) == 2
    assert real.frame_key(0) == ("pvps_data_one_frame", 0)
    f = real.load_frame(0)
    assert f.points is None  # lidar stripped upstream
    assert sorted(f.images) == ["FRONT", "FRONT_LEFT", "FRONT_RIGHT", "SIDE_LEFT", "SIDE_RIGHT"]
    assert f.images["SIDE_LEFT"].shape == (886, 1920, 3)
    assert f.calibration.cameras["FRONT"].width == 1920
    assert f.sequence == "pvps_data_one_frame" and f.timestamp_s == pytest.approx(1553735853.462203)
    msg = real.read_proto(0)
    kept = [lab for lab in msg.laser_labels if lab.type in (1, 2, 4)]  # vehicles, pedestrians, cyclists; signs dropped
    assert len(f.boxes3d) == len(kept) and len(msg.laser_labels) == 75
    assert sum(len(b) for b in f.boxes2d.values()) == 66
    np.testing.assert_allclose(f.boxes3d.lwh[0], [kept[0].box.length, kept[0].box.width, kept[0].box.height], rtol=1e-6)


def test_real_boxes_project_onto_projected_lidar_labels(real):
    """Our projection of each 3D label matches Waymo's own projected_lidar_labels box."""
    ious = []
    for i in range(len(real)):
        f, msg = real.load_frame(i, images=False), real.read_proto(i)
        row = {t: j for j, t in enumerate(f.boxes3d.track_ids)}
        for cam in msg.projected_lidar_labels:
            name = CAMERA_NAMES[cam.name]
            for lab in cam.labels:
                j = row.get(track_id(lab.id.removesuffix(f"_{name}")))
                if j is None:
                    continue
                rect, _ = project_boxes_to_rects(f.boxes3d.xyz_lwh_yaw[j : j + 1], f.calibration, name)
                b = lab.box
                ref = [
                    [
                        b.center_x - b.length / 2,
                        b.center_y - b.width / 2,
                        b.center_x + b.length / 2,
                        b.center_y + b.width / 2,
                    ]
                ]
                ious.append(iou2d(rect, ref)[0, 0])
    ious = np.array(ious)
    assert len(ious) >= 40
    assert np.median(ious) > 0.97 and (ious > 0.8).mean() > 0.9


def test_real_check_is_clean(real):
    assert real.check() == []


def _lidar_frame() -> bytes:
    """A frame with one TOP lidar: 3 beams (pitch -0.1, 0, 0.1), 4 columns, every range 10 m, mounted 2 m up."""
    msg = Frame()
    msg.context.name = "seg"
    cal = msg.context.laser_calibrations.add(name=1, beam_inclination_min=-0.15, beam_inclination_max=0.15)
    cal.beam_inclinations.extend([-0.1, 0.0, 0.1])
    cal.extrinsic.transform.extend([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 0, 0, 0, 1])
    ri = np.zeros((3, 4, 4), np.float32)
    ri[..., 0], ri[..., 1], ri[..., 2] = 10.0, 0.5, 0.25
    ri[2, 3, 0] = -1.0  # an empty pixel
    mat = MESSAGES["MatrixFloat"](data=ri.ravel().tolist())
    mat.shape.dims.extend(ri.shape)
    laser = msg.lasers.add(name=1)
    laser.ri_return1.range_image_compressed = zlib.compress(mat.SerializeToString())
    label = msg.laser_labels.add(type=1, id="car-1")
    label.box.center_x, label.box.length, label.box.width, label.box.height = 5.0, 4.0, 2.0, 1.5
    label.metadata.speed_x = 3.0
    return msg.SerializeToString()


def _spec(root: Path) -> DatasetSpec:
    return DatasetSpec(
        format="waymo", root=root, classes=("Vehicle", "Pedestrian", "Cyclist"), class_map={"Sign": None}
    )


def test_range_image_to_points_hand_computed(tmp_path):
    write_records(tmp_path / "segment-seg_with_camera_labels.tfrecord", [_lidar_frame()])
    ds = WaymoDataset(_spec(tmp_path))
    assert ds.frame_key(0) == ("seg", 0)
    f = ds.load_frame(0)
    assert len(f.points) == 11 and f.points.channels == ("x", "y", "z", "intensity", "elongation")
    # row 1 (pitch 0), column 1: azimuth (2 * (4 - 1 - 0.5) / 4 - 1) pi = pi / 4
    r = 10 / np.sqrt(2)
    assert np.abs(f.points.xyz - [r, r, 2.0]).sum(axis=1).min() < 1e-4
    # row 0 is the highest beam (pitch +0.1), column 0 looks at 3 pi / 4
    p = [10 * np.cos(0.1) * np.cos(0.75 * np.pi), 10 * np.cos(0.1) * np.sin(0.75 * np.pi), 2 + 10 * np.sin(0.1)]
    np.testing.assert_allclose(f.points.xyz[0], p, atol=1e-4)
    np.testing.assert_allclose(f.points.data[0, 3:], [np.tanh(0.5), 0.25], atol=1e-6)
    assert f.boxes3d.lwh.tolist() == [[4.0, 2.0, 1.5]] and f.boxes3d.velocity_xy.tolist() == [[3.0, 0.0]]
    assert f.boxes3d.track_ids[0] == track_id("car-1")


def test_framing_round_trip_and_masking(tmp_path):
    path = tmp_path / "a.tfrecord"
    write_records(path, [b"abc", b"", b"x" * 10_000])
    assert list(read_records(path)) == [b"abc", b"", b"x" * 10_000]
    raw = path.read_bytes()
    assert struct.unpack("<I", raw[8:12])[0] == masked_crc32c(struct.pack("<Q", 3))


def test_corrupt_records_name_file_and_problem(tmp_path):
    good = tmp_path / "good.tfrecord"
    write_records(good, [_lidar_frame()])
    raw = good.read_bytes()
    (tmp_path / "truncated.tfrecord").write_bytes(raw[:-10])
    flipped = bytearray(raw)
    flipped[20] ^= 0xFF
    (tmp_path / "crc.tfrecord").write_bytes(bytes(flipped))
    write_records(tmp_path / "notproto.tfrecord", [b"\xff\xff\xff\xff"])
    with pytest.raises(CorruptFileError, match=r"truncated.tfrecord: record 0 at byte 0: truncated"):
        record_index(tmp_path / "truncated.tfrecord")
    with pytest.warns(UserWarning, match="truncated"):
        ds = WaymoDataset(_spec(tmp_path))
    assert len(ds) == 3  # crc, good, notproto
    with pytest.raises(CorruptFileError, match="crc.tfrecord: record at byte 0: data CRC mismatch"):
        ds.load_frame(0)
    with pytest.raises(CorruptFileError, match="notproto.tfrecord: record 0: not a Waymo Frame proto"):
        ds.load_frame(2)
    text = "\n".join(map(str, ds.check()))
    assert "truncated" in text and "CRC mismatch" in text and "not a Waymo Frame" in text
    assert len(ds.check()) == 3


def test_missing_split_folder(tmp_path):
    with pytest.raises(DataError, match="split folder not found"):
        WaymoDataset(_spec(tmp_path), split="validation")
