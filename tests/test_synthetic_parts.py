"""Building blocks of the synthetic dataset on hand-made scenes: road coordinates, lidar ray casting,
camera visibility, oxts encoding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception.core import SE3, box_corners, points_in_boxes, rotation_z
from perception.data.kitti_format import kitti_calibration
from perception.data.kitti_tracking import oxts_to_poses
from perception.data.synthetic import IMAGE_SIZE, synthetic_calib_raw
from perception.data.synthetic_camera import box_visibility, clip_near
from perception.data.synthetic_lidar import LidarModel
from perception.data.synthetic_scene import CAR, CYCLIST, PEDESTRIAN, Road, actor_parts, paint_coverage
from perception.data.synthetic_writer import format_oxts, oxts_rows, tracking_truncation

GROUND_Z = -1.73
CALIB = kitti_calibration(synthetic_calib_raw(), {"image_2": IMAGE_SIZE})


@settings(max_examples=50, deadline=None)
@given(
    kappa=st.sampled_from([0.0, 1 / 300, -1 / 250]),
    s=st.floats(-300, 300),
    d=st.floats(-30, 30),
)
def test_road_coordinates_invert(kappa, s, d):
    road = Road(kappa)
    xy = road.to_xy(np.array([s]), np.array([d]))
    s2, d2 = road.to_sd(xy)
    assert s2[0] == pytest.approx(s, abs=1e-6) and d2[0] == pytest.approx(d, abs=1e-6)


def test_curved_road_keeps_lanes_parallel():
    road = Road(1 / 200)
    s = np.linspace(0, 300, 7)
    left, right = road.to_xy(s, np.full(7, 3.5)), road.to_xy(s, np.full(7, -3.5))
    assert np.allclose(np.linalg.norm(left - right, axis=1), 7.0)
    assert road.heading(100.0) == pytest.approx(0.5)


def test_paint_coverage_dashes():
    s = np.array([0.5, 4.0, 0.5, 0.5])
    d = np.array([3.5, 3.5, 5.0, -7.0])  # dash on, dash gap, lane middle, solid edge line
    assert np.array_equal(paint_coverage(s, d), [1.0, 0.0, 0.0, 1.0])


def _lidar() -> LidarModel:
    return LidarModel(rings=16, azimuth_steps=720, range_noise_m=0.0, dropout=0.0)


def _cast(boxes):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    return _lidar().cast(boxes, np.full(len(boxes), 0.5), GROUND_Z, lambda xy: np.full(len(xy), 0.2),
                         np.random.default_rng(0))  # fmt: skip


def test_lidar_hits_ground_at_its_height_and_nothing_beyond_range():
    points, hit = _cast(np.zeros((0, 7)))
    assert (hit == -1).all()
    assert np.allclose(points[:, 2], GROUND_Z, atol=1e-5)
    assert np.linalg.norm(points[:, :3], axis=1).max() <= 100.0
    reach = _lidar().directions[:, 2] <= GROUND_Z / 100.0  # rays steep enough to meet the ground within 100 m
    assert len(points) == reach.sum() and reach.sum() % 720 == 0


def test_lidar_hits_box_face_and_hides_what_is_behind():
    front = [10.0, 0.0, 0.0, 2.0, 4.0, 3.8, 0.0]  # x = 9 .. 11, taller than the lidar: only its face is seen
    behind = [20.0, 0.0, -0.5, 2.0, 1.0, 2.0, 0.0]  # smaller, wholly in the shadow of ``front``
    points, hit = _cast([front, behind])
    on_front = points[hit == 0]
    assert len(on_front) > 20 and np.allclose(on_front[:, 0], 9.0, atol=1e-4)
    assert (hit == 1).sum() == 0
    assert points_in_boxes(points[:, :3], np.array([behind]), margin_m=0.01).sum() == 0
    _, hit_alone = _cast([behind])
    assert (hit_alone == 0).sum() > 0  # visible when nothing is in front


def test_lidar_point_count_falls_with_distance():
    counts = [(_cast([[x, 0.0, -1.0, 4.0, 1.7, 1.5, 0.3]])[1] == 0).sum() for x in (8.0, 20.0, 50.0)]
    assert counts[0] > counts[1] > counts[2] > 0


@pytest.mark.parametrize("kind", [CAR, PEDESTRIAN, CYCLIST])
def test_parts_stay_inside_their_actor(kind):
    box = np.array([[12.0, -3.0, -0.9, 4.0, 1.7, 1.6, 0.7]])
    if kind != CAR:
        box[0, 3:6] = [0.8, 0.6, 1.75] if kind == PEDESTRIAN else [1.8, 0.6, 1.7]
    for gait in (0.0, 1.2, 3.0):
        parts = actor_parts(np.array([kind]), box, np.full((1, 3, 3), 0.5), np.array([gait]))
        inside = points_in_boxes(box_corners(parts["boxes"]).reshape(-1, 3), box, margin_m=1e-6)
        assert inside.all(), (kind, gait)
        assert (parts["owner"] == 0).all() and len(parts["boxes"]) == len(parts["colour"]) > 3


def test_visibility_of_hidden_truncated_and_outside_boxes():
    boxes = np.array([
        [10.0, 0.0, -0.98, 4.0, 1.8, 1.5, 0.0],  # in front, fully visible
        [20.0, 0.0, -1.0, 4.0, 1.2, 1.0, 0.0],  # right behind it, smaller: hidden
        [6.0, 4.0, -0.98, 4.0, 1.8, 1.5, 0.0],  # cut by the left image border
        [5.0, 20.0, -0.98, 4.0, 1.8, 1.5, 0.0],  # outside the image
    ])  # fmt: skip
    truncated, visible, px = box_visibility(boxes, CALIB, "image_2")
    assert truncated[0] == pytest.approx(0.0) and visible[0] == pytest.approx(1.0)
    assert visible[1] == 0.0 and px[1] > 100
    assert 0.05 < truncated[2] < 0.95 and visible[2] == pytest.approx(1.0, abs=0.02)
    assert truncated[3] == 1.0 and px[3] == 0


def test_clip_near_keeps_the_part_in_front():
    square = np.array([[-1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, 3.0], [-1.0, 0.0, 3.0]])
    clipped = clip_near(square, near=1.0)
    assert (clipped[:, 2] >= 1.0 - 1e-12).all() and len(clipped) == 4
    assert np.isclose(clipped[:, 2].min(), 1.0) and np.isclose(clipped[:, 2].max(), 3.0)


def test_oxts_rows_give_back_the_poses_through_the_devkit_conversion():
    rng = np.random.default_rng(0)
    poses = [SE3.from_rt(rotation_z(0.02 * i + 0.3), [i * 0.9 + 1.0, 0.1 * i * i - 2.0, 0.8]) for i in range(20)]
    world = [poses[0].inverse() @ p for p in poses]
    rows = oxts_rows(world, 9.0, 0.2, rng)
    parsed = np.array([[float(v) for v in line.split()] for line in format_oxts(rows).splitlines()])
    assert parsed.shape == (20, 30)
    recovered = oxts_to_poses(parsed)
    assert np.allclose(recovered, np.stack([w.matrix for w in world]), atol=1e-6)


def test_tracking_truncation_levels():
    assert np.array_equal(tracking_truncation(np.array([0.0, 0.3, 0.999, 1.0])), [0, 1, 1, 2])
