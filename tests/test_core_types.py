"""SE3, Boxes3D / Boxes2D, PointCloud and Frame: construction checks, indexing, transforms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception.core import SE3, Boxes2D, Boxes3D, Frame, PointCloud, rotation_z, wrap_angle
from perception.errors import ShapeError

angles = st.floats(-np.pi, np.pi, allow_nan=False)
coords = st.tuples(*[st.floats(-100, 100, allow_nan=False)] * 3)


@settings(max_examples=40, deadline=None)
@given(yaw=angles, t=coords, p=coords)
def test_se3_inverse_and_compose(yaw: float, t: tuple, p: tuple) -> None:
    T = SE3.from_rt(rotation_z(yaw), t)
    pts = np.array([p])
    np.testing.assert_allclose(T.inverse().apply(T.apply(pts)), pts, atol=1e-9)
    np.testing.assert_allclose((T @ T.inverse()).matrix, np.eye(4), atol=1e-9)
    assert T.yaw_rad == pytest.approx(float(wrap_angle(yaw)), abs=1e-9) or abs(yaw) == pytest.approx(np.pi)


def test_se3_apply_keeps_extra_columns_and_dtype() -> None:
    T = SE3.from_rt(rotation_z(np.pi / 2), [1, 0, 0])
    pts = np.array([[1, 0, 0, 0.7]], dtype=np.float32)
    out = T.apply(pts)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[1, 1, 0, 0.7]], atol=1e-6)
    np.testing.assert_allclose(T.apply_vectors(np.array([[1.0, 0, 0]])), [[0, 1, 0]], atol=1e-12)


def test_se3_quaternion_and_shape_error() -> None:
    half = np.sqrt(0.5)
    T = SE3.from_quaternion(np.array([half, 0, 0, half]), [0, 0, 0])  # 90 deg about z
    np.testing.assert_allclose(T.rotation, rotation_z(np.pi / 2), atol=1e-12)
    with pytest.raises(ShapeError, match="4x4"):
        SE3(np.eye(3))


def _boxes(n: int = 3) -> Boxes3D:
    xyz = np.arange(n * 7, dtype=np.float32).reshape(n, 7)
    return Boxes3D(xyz, np.arange(n), scores=np.linspace(0.1, 0.9, n), track_ids=np.arange(n) + 10,
                   velocity_xy=np.ones((n, 2)), attributes={"box2d": np.zeros((n, 4)), "occluded": np.arange(n)})  # fmt: skip


def test_boxes_indexing_applies_to_every_field() -> None:
    b = _boxes(4)
    for index in (np.array([True, False, True, False]), np.array([2, 0]), slice(0, 3, 2)):
        sub = b[index]
        assert len(sub) == 2
        np.testing.assert_array_equal(sub.labels, b.labels[index])
        np.testing.assert_array_equal(sub.track_ids, b.track_ids[index])
        np.testing.assert_array_equal(sub.attributes["occluded"], b.attributes["occluded"][index])
        assert sub.attributes["box2d"].shape == (2, 4) and sub.scores.shape == (2,)
    one = b[1]
    assert len(one) == 1 and one.track_ids.tolist() == [11]


def test_boxes_shape_mismatch_errors() -> None:
    with pytest.raises(ShapeError, match=r"xyz_lwh_yaw has shape \(2, 6\), expected \(2, 7\)"):
        Boxes3D(np.zeros((2, 6)), [0, 1])
    with pytest.raises(ShapeError, match="scores"):
        Boxes3D(np.zeros((2, 7)), [0, 1], scores=np.zeros(3))
    with pytest.raises(ShapeError, match="attribute 'alpha'"):
        Boxes3D(np.zeros((2, 7)), [0, 1], attributes={"alpha": np.zeros(1)})
    with pytest.raises(ShapeError, match="xyxy"):
        Boxes2D(np.zeros((1, 3)), [0])


def test_boxes_concatenate_and_empty() -> None:
    b = Boxes3D.concatenate([_boxes(2), _boxes(3)])
    assert len(b) == 5 and b.track_ids.tolist() == [10, 11, 10, 11, 12]
    plain = Boxes3D(np.zeros((1, 7)), [0])
    mixed = Boxes3D.concatenate([_boxes(2), plain])
    assert mixed.scores is None and mixed.attributes == {} and len(mixed) == 3
    assert len(Boxes3D.concatenate([])) == 0 and len(Boxes2D.empty()) == 0


def test_boxes_transformed_moves_centre_yaw_and_velocity() -> None:
    b = Boxes3D(np.array([[1, 0, 0, 4, 2, 1, 0.5]]), [0], velocity_xy=np.array([[2.0, 0]]))
    T = SE3.from_rt(rotation_z(np.pi / 2), [10, 0, 0])
    out = b.transformed(T)
    np.testing.assert_allclose(out.xyz_lwh_yaw[0], [10, 1, 0, 4, 2, 1, 0.5 + np.pi / 2], atol=1e-6)
    np.testing.assert_allclose(out.velocity_xy, [[0, 2]], atol=1e-6)


def test_pointcloud_channels() -> None:
    pc = PointCloud(np.arange(8, dtype=np.float64).reshape(2, 4))
    assert pc.data.dtype == np.float32 and len(pc) == 2
    np.testing.assert_array_equal(pc.channel("intensity"), [3, 7])
    assert len(pc[pc.xyz[:, 0] > 1]) == 1
    with pytest.raises(ShapeError, match="channels"):
        PointCloud(np.zeros((2, 3)))
    with pytest.raises(ShapeError, match="x, y, z"):
        PointCloud(np.zeros((2, 3)), channels=("y", "x", "z"))
    with pytest.raises(KeyError, match="ring"):
        pc.channel("ring")


def test_frame_name_and_read_only_maps() -> None:
    f = Frame("kitti", "0001", 42, 4.2, ["Car"], images={"image_2": np.zeros((2, 2, 3), np.uint8)})
    assert f.name == "kitti/0001/000042" and f.class_names == ("Car",)
    assert Frame("kitti", "", 7, 0.0, ("Car",)).name == "kitti/000007"
    with pytest.raises(TypeError):
        f.images["x"] = None


def test_frame_pickles_with_read_only_maps() -> None:
    """Regression: read-only mapping fields made frames unpicklable (data-loader workers)."""
    import pickle

    boxes = Boxes3D(np.zeros((1, 7)), [0], attributes={"num_points": [3]})
    f = Frame("kitti", "", 1, 0.0, ("Car",), images={"image_2": np.ones((2, 2, 3), np.uint8)}, boxes3d=boxes)
    g = pickle.loads(pickle.dumps(f))
    assert g.images["image_2"].sum() == 12 and g.boxes3d.attributes["num_points"].tolist() == [3]
    with pytest.raises(TypeError):
        g.boxes3d.attributes["x"] = 1
