"""Camera overlays, BEV raster and colours on small hand-built scenes."""

from __future__ import annotations

import numpy as np
import pytest

from perception.core import SE3, Boxes2D, Boxes3D, Calibration, CameraIntrinsics
from perception.viz.bev import BevGrid, render_bev
from perception.viz.colors import GT_COLOR, class_color, ground_z_range, height_colormap, track_color
from perception.viz.overlay import clip_segments, draw_boxes2d, draw_boxes3d, draw_trails

W, H = 320, 240
CLASSES = ("Car", "Pedestrian", "Cyclist")


def front_camera() -> Calibration:
    """A camera at the ego origin looking along +x: cam z = ego x, cam x = -ego y, cam y = -ego z."""
    R_ego_from_cam = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    K = np.array([[200.0, 0.0, W / 2], [0.0, 200.0, H / 2], [0.0, 0.0, 1.0]])
    return Calibration({"cam": SE3.from_rt(R_ego_from_cam, np.zeros(3))}, {"cam": CameraIntrinsics(K, W, H)})


def boxes(*rows, track_ids=None) -> Boxes3D:
    return Boxes3D(np.array(rows, np.float32), np.zeros(len(rows), np.int64), track_ids=track_ids)


def painted(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return (before != after).any(axis=2)


def test_box_ahead_is_drawn_where_it_projects():
    img = np.zeros((H, W, 3), np.uint8)
    out = draw_boxes3d(img, boxes([10, 0, 0, 4, 2, 2, 0]), front_camera(), "cam", CLASSES, label=False)
    assert (img == 0).all(), "input must not be modified without inplace"
    ys, xs = np.nonzero(painted(img, out))
    # Nearest face at x=8 m: half-width 1 m -> 200 * 1 / 8 = 25 px either side of the centre.
    assert xs.min() == pytest.approx(W / 2 - 25, abs=3) and xs.max() == pytest.approx(W / 2 + 25, abs=3)
    assert ys.min() == pytest.approx(H / 2 - 25, abs=3) and ys.max() == pytest.approx(H / 2 + 25, abs=3)
    assert tuple(out[ys[0], xs[0]]) != (0, 0, 0)
    assert np.all(out[H // 2, W // 2] == 0), "the inside of a wireframe stays untouched"


def test_box_behind_camera_draws_nothing():
    img = np.zeros((H, W, 3), np.uint8)
    out = draw_boxes3d(img, boxes([-10, 0, 0, 4, 2, 2, 0]), front_camera(), "cam", CLASSES)
    assert not painted(img, out).any()


def test_box_through_the_image_plane_is_clipped_not_wrapped():
    img = np.zeros((H, W, 3), np.uint8)
    out = draw_boxes3d(img, boxes([1.0, 0, 0, 6, 2, 2, 0]), front_camera(), "cam", CLASSES, label=False)
    mask = painted(img, out)
    assert mask.any(), "the part in front of the camera is drawn"
    # A box that straddles the camera: near-plane cut edges run off-screen; nothing wraps to a wrong place.
    assert mask[:, 0].any() or mask[:, -1].any() or mask[0].any() or mask[-1].any()


def test_gt_colour_and_track_colour():
    calib, img = front_camera(), np.zeros((H, W, 3), np.uint8)
    out = draw_boxes3d(img, boxes([10, 0, 0, 4, 2, 2, 0]), calib, "cam", color=GT_COLOR, label=False)
    assert {tuple(c) for c in out[painted(img, out)]} >= {GT_COLOR}
    out = draw_boxes3d(img, boxes([10, 0, 0, 4, 2, 2, 0], track_ids=[7]), calib, "cam", CLASSES, label=False)
    assert tuple(track_color(7)) in {tuple(c) for c in out[painted(img, out)]}


def test_draw_boxes2d_outline_and_label():
    img = np.zeros((H, W, 3), np.uint8)
    b = Boxes2D(np.array([[50, 60, 150, 200]], np.float32), [1], scores=[0.9])
    out = draw_boxes2d(img, b, CLASSES, thickness=1)
    assert tuple(out[130, 50]) == class_color(1, CLASSES) and tuple(out[200, 100]) == class_color(1, CLASSES)
    assert tuple(out[130, 100]) == (0, 0, 0)
    assert painted(img, out)[40:60, 50:100].any(), "label tag above the box"


def test_draw_trails_projects_points():
    img = np.zeros((H, W, 3), np.uint8)
    trail = {3: np.array([[20.0, 2.0, 0.0], [15.0, 1.0, 0.0], [10.0, 0.0, 0.0]])}
    out = draw_trails(img, trail, front_camera(), "cam", thickness=1)
    _ys, xs = np.nonzero(painted(img, out))
    assert xs.min() == pytest.approx(W / 2 - 20, abs=2) and xs.max() == pytest.approx(W / 2, abs=2)


def test_clip_segments_hand_cases():
    seg = np.array([[[-10, 5], [20, 5]], [[-5, -5], [-1, -1]], [[2, 2], [8, 8]], [[5, -100], [5, 100]]], float)
    out, inside = clip_segments(seg, 10, 10)
    assert inside.tolist() == [True, False, True, True]
    np.testing.assert_allclose(out[0], [[0, 5], [9, 5]])
    np.testing.assert_allclose(out[2], seg[2])
    np.testing.assert_allclose(out[3], [[5, 0], [5, 9]])


def test_render_bev_places_boxes_points_and_ego():
    grid = BevGrid((-10, 30, -20, 20), 5)
    pts = np.array([[20.0, 10.0, 1.4], [20.0, -10.0, -1.9]], np.float32)
    img = render_bev(
        pts, boxes([10, 5, 0, 4, 2, 1.5, 0]), class_names=CLASSES, range_m=(-10, 30, -20, 20), px_per_m=5, z_range_m=(-2, 1.5)
    )
    assert img.shape == (200, 200, 3) and (grid.width, grid.height) == (200, 200)
    u, v = grid.to_px(np.array([20.0, 10.0])).astype(int)
    assert tuple(img[v, u]) == tuple(height_colormap(np.array([1.4]), -2.0, 1.5)[0])
    u, v = grid.to_px(np.array([12.0, 5.0])).round().astype(int)  # front edge of the box
    assert (np.abs(img[v - 1 : v + 2, u].astype(int) - class_color(0, CLASSES)).sum(axis=1) < 60).any()
    u, v = grid.to_px(np.zeros(2)).round().astype(int)
    assert img[v - 12 : v + 12, u - 6 : u + 6].max() > 200, "ego marker round the origin"


def test_render_bev_heading_tick_points_forward():
    b = boxes([10, 0, 0, 4, 2, 1.5, np.pi / 2])  # heading +y: the tick points left in the image
    img = render_bev(None, b, class_names=CLASSES, range_m=(0, 20, -10, 10), px_per_m=10)
    grid = BevGrid((0, 20, -10, 10), 10)
    left = grid.to_px(np.array([10.0, 0.8])).round().astype(int)
    right = grid.to_px(np.array([10.0, -0.8])).round().astype(int)
    assert img[left[1], left[0]].max() > 100 and img[right[1], right[0]].max() < 60


def test_colours_are_fixed_and_distinct():
    assert class_color(0, ("Car",)) == class_color(3, ("a", "b", "c", "car"))
    assert track_color(5) == track_color(5)
    ids = [track_color(i) for i in range(8)]
    assert len(set(ids)) == 8


def test_track_colours_spread_for_64_bit_ids():
    big = [track_color(7_000_000_000_000_000_000 + i) for i in range(6)]
    assert len(set(big)) == 6


def test_ground_z_range_follows_the_ground():
    ground = np.zeros(1000)
    roof_sensor = np.concatenate([ground - 1.73, np.linspace(-1.7, 1.0, 50)])
    assert ground_z_range(roof_sensor)[0] == pytest.approx(-1.93)
    assert ground_z_range(roof_sensor + 1.73)[0] == pytest.approx(-0.2, abs=1e-5)
