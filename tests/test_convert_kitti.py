"""Any dataset -> KITTI layout, read back with the KITTI loaders (real AV2 and Waymo excerpts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.cli import main
from perception.core import Boxes3D, Calibration, Frame, iou2d, project_boxes_to_rects, wrap_angle
from perception.data.convert_kitti import convert_to_kitti, frame_to_kitti
from perception.data.registry import load_dataset
from perception.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def av2(shared_data):
    return load_dataset(ROOT / "datasets" / "argoverse2.yaml")


@pytest.fixture(scope="module")
def av2_kitti(av2, tmp_path_factory):
    out = tmp_path_factory.mktemp("av2_kitti")
    assert (
        main(["data", "convert", "--from", str(ROOT / "datasets/argoverse2.yaml"), "--to", "kitti", "--out", str(out)])
        == 0
    )
    return out


def test_round_trip_through_kitti_loader(av2, av2_kitti):
    back = load_dataset(av2_kitti / "kitti.yaml")
    assert len(back) == len(av2) == 3
    for i in range(3):
        src, dst = av2.load_frame(i, images=False), back.load_frame(i)
        np.testing.assert_array_equal(dst.points.xyz, src.points.xyz)
        np.testing.assert_allclose(dst.points.data[:, 3], src.points.data[:, 3], atol=1e-6)
        assert [back.class_names[k] for k in dst.boxes3d.labels] == [av2.class_names[k] for k in src.boxes3d.labels]
        np.testing.assert_allclose(dst.boxes3d.xyz, src.boxes3d.xyz, atol=0.011)  # labels keep 2 decimals
        np.testing.assert_allclose(dst.boxes3d.lwh, src.boxes3d.lwh, atol=0.006)
        assert np.abs(wrap_angle(dst.boxes3d.yaw - src.boxes3d.yaw)).max() < 0.011
    # the front camera became image_2 (frame 2's log has no calibration: a virtual camera)
    calib0 = av2.load_frame(0, points=False, images=False).calibration
    np.testing.assert_allclose(
        back.load_frame(0).calibration.T("image_2", "ego").matrix,
        calib0.T("ring_front_center", "ego").matrix,
        atol=1e-9,
    )
    assert (av2_kitti / "frames_val.txt").read_text().splitlines()[2].split()[2].startswith("adcf7d18")


def test_min_points_and_visibility_filters(av2):
    f = av2.load_frame(0, images=False)
    objs, _ = frame_to_kitti(f, min_points=5)
    assert len(objs) == int((f.boxes3d.attributes["num_points"] >= 5).sum()) < len(f.boxes3d)
    objs, raw = frame_to_kitti(f, min_visibility=0.5)
    assert 0 < len(objs) < len(f.boxes3d) and (objs.truncated <= 0.5).all()
    w, h = f.calibration.cameras["ring_front_center"].width, f.calibration.cameras["ring_front_center"].height
    assert (objs.bbox[:, 2] <= w).all() and (objs.bbox[:, 3] <= h).all() and (objs.bbox[:, 2] > objs.bbox[:, 0]).all()
    np.testing.assert_allclose(raw["P2"][:, :3], f.calibration.cameras["ring_front_center"].K)


def test_min_points_needs_points_or_counts():
    frame = Frame(
        "x", "", 0, 0.0, ("Car",), boxes3d=Boxes3D(np.array([[5, 0, 0, 4, 2, 1.5, 0]]), [0]), calibration=Calibration()
    )
    assert len(frame_to_kitti(frame)[0]) == 1  # virtual camera, box straight ahead
    with pytest.raises(DataError, match="min_points needs lidar points"):
        frame_to_kitti(frame, min_points=1)


def test_waymo_images_and_projected_labels(shared_data, tmp_path):
    waymo = load_dataset(ROOT / "datasets" / "waymo.yaml")
    convert_to_kitti(waymo, tmp_path, min_visibility=0.3)
    back = load_dataset(tmp_path / "kitti.yaml")
    f, src = back.load_frame(0, points=False), waymo.load_frame(0, points=False)
    assert f.images["image_2"].shape == src.images["FRONT"].shape
    assert not (tmp_path / "training/velodyne").exists() and 0 < len(f.boxes3d) < len(src.boxes3d)
    rects, _ = project_boxes_to_rects(f.boxes3d.xyz_lwh_yaw, f.calibration, "image_2")
    np.testing.assert_allclose(np.diag(iou2d(rects, f.boxes3d.attributes["box2d"])), 1.0, atol=0.02)


def test_tracking_layout(av2, tmp_path):
    yaml_path = convert_to_kitti(av2, tmp_path, layout="tracking")
    rows = [line.split() for line in (tmp_path / "training/label_02/0000.txt").read_text().splitlines()]
    assert {r[0] for r in rows} == {"0", "1"}
    ids0 = {r[1] for r in rows if r[0] == "0"}
    assert len(ids0 & {r[1] for r in rows if r[0] == "1"}) > 40  # the same tracks keep their ids
    back = load_dataset(yaml_path)
    assert back.sequences() == {"0000": [0, 1], "0001": [2]}
    assert len(back.load_frame(1).boxes3d) == len(av2.load_frame(1, points=False, images=False).boxes3d)


def test_second_split_continues_ids(av2, tmp_path):
    convert_to_kitti(av2, tmp_path)
    (tmp_path / "ImageSets/val.txt").rename(tmp_path / "ImageSets/train.txt")
    convert_to_kitti(av2, tmp_path)
    assert (tmp_path / "ImageSets/val.txt").read_text().split() == ["000003", "000004", "000005"]


def test_kitti_objects_on_non_kitti_loaders(av2):
    objs = av2.kitti_objects(0)
    f = av2.load_frame(0, points=False, images=False)
    assert len(objs) == len(f.boxes3d) and objs.type[0] == av2.class_names[f.boxes3d.labels[0]]
    np.testing.assert_allclose(objs.dimensions_hwl[:, [2, 1, 0]], f.boxes3d.lwh, atol=1e-6)  # hwl <-> lwh
