"""Box corners, points in boxes, projection into a camera with near-plane clipping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception.core import (
    SE3,
    Calibration,
    CameraIntrinsics,
    bev_corners,
    box_corners,
    count_points_in_boxes,
    points_in_boxes,
    project_box_edges,
    project_boxes_to_rects,
)
from perception.core.geometry import NEAR_PLANE_M

# A camera at the ego origin looking along ego +x: camera x = -ego y, camera y = -ego z, camera z = ego x.
T_EGO_FROM_CAM = SE3.from_rt(np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float), [0, 0, 0])
K = np.array([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]])
CALIB = Calibration({"cam": T_EGO_FROM_CAM}, {"cam": CameraIntrinsics(K, 100, 80)})


def test_box_corners_axis_aligned_and_rotated() -> None:
    c = box_corners(np.array([[1, 2, 3, 4, 2, 1, 0]]))[0]
    np.testing.assert_allclose(c.min(axis=0), [-1, 1, 2.5])
    np.testing.assert_allclose(c.max(axis=0), [3, 3, 3.5])
    np.testing.assert_allclose(c[0], [3, 3, 2.5])  # front-left-bottom first
    r = bev_corners(np.array([[0, 0, 0, 4, 2, 1, np.pi / 2]]))[0]
    np.testing.assert_allclose(r, [[-1, 2], [-1, -2], [1, -2], [1, 2]], atol=1e-12)  # heading now +y
    x, y = r[:, 0], r[:, 1]
    assert 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) == pytest.approx(8.0)  # CCW, area l*w


def test_points_in_rotated_box() -> None:
    b = np.array([[10, 0, 0, 4, 1, 2, np.pi / 4]])
    pts = np.array([[10, 0, 0], [11.4, 1.4, 0], [11.4, -1.4, 0], [10, 0, 1.01], [10.3, 0.3, -0.99]])
    np.testing.assert_array_equal(points_in_boxes(pts, b)[:, 0], [True, True, False, False, True])
    assert points_in_boxes(pts[3:4], b, margin_m=0.02)[0, 0]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 300), chunk=st.integers(1, 50), seed=st.integers(0, 1000))
def test_count_points_in_boxes_chunking(n: int, chunk: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-5, 5, (n, 3))
    b = np.array([[0, 0, 0, 4, 3, 2, 0.3], [2, 2, 0, 2, 2, 8, -1.0]])
    np.testing.assert_array_equal(count_points_in_boxes(pts, b, chunk=chunk), points_in_boxes(pts, b).sum(axis=0))


def test_project_box_in_front_matches_corner_projection() -> None:
    b = np.array([[10, 0, 0, 2, 2, 2, 0.0]])
    rects, valid = project_boxes_to_rects(b, CALIB, "cam", clip_to_image=False)
    # nearest face at x = 9 spans y, z in [-1, 1]: u = 50 -+ 100 / 9, v = 40 -+ 100 / 9
    assert valid.all()
    np.testing.assert_allclose(rects[0], [50 - 100 / 9, 40 - 100 / 9, 50 + 100 / 9, 40 + 100 / 9], rtol=1e-6)


def test_box_behind_camera_is_invalid() -> None:
    _, valid = project_boxes_to_rects(np.array([[-10, 0, 0, 2, 2, 2, 0.0]]), CALIB, "cam")
    assert not valid.any()


def test_straddling_box_edges_clipped_at_near_plane() -> None:
    b = np.array([[0.0, 0, 0, 4, 2, 2, 0.0]])  # x from -2 to 2: half behind the camera
    segments, visible = project_box_edges(b, CALIB, "cam")
    assert visible.sum() == 8  # 4 edges of the back face (x = -2) are wholly behind
    # every visible end point is finite and the clipped ones lie on the near plane (x = 0.1):
    # v = 40 - 100 * z / x with z = +-1 -> 40 -+ 1000
    ends = segments[visible].reshape(-1, 2)
    assert np.isfinite(ends).all()
    assert np.isclose(np.abs(ends[:, 1] - 40), 100 / NEAR_PLANE_M).any()
    rects, valid = project_boxes_to_rects(b, CALIB, "cam")
    assert valid.all()
    np.testing.assert_allclose(rects[0], [0, 0, 100, 80])  # fills the image after clipping


def test_calibration_project_and_chain() -> None:
    lidar = SE3.from_rt(np.eye(3), [1.0, 0, 1.5])
    calib = Calibration({"cam": T_EGO_FROM_CAM, "lidar": lidar}, {"cam": CameraIntrinsics(K, 100, 80)})
    uv, depth = calib.project(np.array([[9.0, 0, -1.5]]), "cam", src="lidar")  # ego (10, 0, 0)
    np.testing.assert_allclose(uv, [[50, 40]])
    np.testing.assert_allclose(depth, [10])
    np.testing.assert_allclose(calib.T("lidar", "cam").matrix, (lidar.inverse() @ T_EGO_FROM_CAM).matrix)
    with pytest.raises(KeyError, match="no sensor 'radar'"):
        calib.T("radar", "cam")


def test_project_boxes_to_rects_with_no_boxes() -> None:
    """Regression: zero boxes crashed in a reshape."""
    from perception.core import SE3, Calibration, CameraIntrinsics, project_boxes_to_rects

    calib = Calibration({"cam": SE3.identity()}, {"cam": CameraIntrinsics(np.eye(3), 10, 10)})
    xyxy, valid = project_boxes_to_rects(np.zeros((0, 7)), calib, "cam")
    assert xyxy.shape == (0, 4) and valid.shape == (0,)
