"""Rotated BEV / 3D IoU and 2D IoU: hand-computed cases, regressions and hypothesis properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception.core import bev_intersection, bev_iou, iou2d, iou3d


def box(x=0.0, y=0.0, z=0.0, l=4.0, w=2.0, h=1.5, yaw=0.0) -> np.ndarray:
    return np.array([[x, y, z, l, w, h, yaw]])


def test_identical_boxes_iou_one() -> None:
    for yaw in (0.0, 0.3, np.pi / 4, -2.5):
        b = box(3.0, -7.0, 1.0, yaw=yaw)
        assert bev_iou(b, b)[0, 0] == pytest.approx(1.0, abs=1e-9)
        assert iou3d(b, b)[0, 0] == pytest.approx(1.0, abs=1e-9)


def test_bev_iou_bit_identical_rotated_float32_boxes() -> None:
    """A widely copied Python port scores bit-identical rotated boxes near 0; the devkit scores 1."""
    b = np.array([[12.34, -3.21, -0.8, 3.9, 1.6, 1.5, 1.2345]], dtype=np.float32)
    assert bev_iou(b, b)[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_disjoint_and_touching() -> None:
    assert bev_iou(box(), box(x=10.0))[0, 0] == 0.0
    assert bev_iou(box(), box(x=4.0))[0, 0] == pytest.approx(0.0, abs=1e-9)  # edges touch at x = 2
    assert iou3d(box(), box(z=5.0))[0, 0] == 0.0  # same footprint, no height overlap


def test_square_rotated_45_degrees() -> None:
    """Unit square vs itself turned 45 deg: the overlap is a regular octagon of area 2(sqrt2 - 1)."""
    a, b = box(l=1, w=1), box(l=1, w=1, yaw=np.pi / 4)
    octagon = 2 * (np.sqrt(2) - 1)
    assert bev_intersection(a, b)[0, 0] == pytest.approx(octagon, abs=1e-9)
    assert bev_iou(a, b)[0, 0] == pytest.approx(octagon / (2 - octagon), abs=1e-9)  # = 1/sqrt(2)
    assert bev_iou(a, b)[0, 0] == pytest.approx(1 / np.sqrt(2), abs=1e-9)


def test_rotated_90_cross() -> None:
    """4x2 box and the same box turned 90 deg: overlap is the 2x2 centre square."""
    assert bev_iou(box(), box(yaw=np.pi / 2))[0, 0] == pytest.approx(4 / (8 + 8 - 4))


def test_partial_overlap_in_height() -> None:
    a, b = box(z=0.0, h=2.0), box(z=1.0, h=2.0)  # same footprint, heights [-1, 1] and [0, 2]
    assert bev_iou(a, b)[0, 0] == pytest.approx(1.0)
    assert iou3d(a, b)[0, 0] == pytest.approx(1 / 3)  # 8 / (16 + 16 - 8)


def test_partial_offset_and_containment() -> None:
    assert bev_iou(box(), box(x=2.0))[0, 0] == pytest.approx(4 / 12)
    assert bev_iou(box(l=4, w=4), box(l=2, w=2, yaw=0.7))[0, 0] == pytest.approx(4 / 16)
    assert iou3d(box(l=4, w=4, h=2), box(l=2, w=2, h=1, yaw=0.7))[0, 0] == pytest.approx(4 / 32)


def test_yaw_plus_pi_is_the_same_box() -> None:
    assert bev_iou(box(yaw=0.4), box(yaw=0.4 + np.pi))[0, 0] == pytest.approx(1.0, abs=1e-9)


def test_shapes_and_empty() -> None:
    a = np.concatenate([box(), box(x=2.0), box(x=50.0)])
    assert bev_iou(a, a[:2]).shape == (3, 2)
    assert bev_iou(a, np.zeros((0, 7))).shape == (3, 0)
    assert iou3d(np.zeros((0, 7)), a).shape == (0, 3)
    np.testing.assert_allclose(bev_iou(a, a[:2]), [[1, 1 / 3], [1 / 3, 1], [0, 0]], atol=1e-9)


def test_iou2d_hand_cases() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [2, 2, 4, 4], [10, 0, 20, 10]])
    np.testing.assert_allclose(iou2d(a, b), [[1.0, 50 / 150, 0.0, 4 / 100, 0.0]])


# ---------------------------------------------------------------- properties

finite = st.floats(-20, 20, allow_nan=False)
sizes = st.floats(0.2, 8, allow_nan=False)
angles = st.floats(-np.pi, np.pi, allow_nan=False)
one_box = st.tuples(finite, finite, st.floats(-2, 2), sizes, sizes, sizes, angles)


def boxes(max_n: int = 6):
    return st.lists(one_box, min_size=1, max_size=max_n).map(lambda rows: np.array(rows, dtype=np.float64))


@settings(max_examples=60, deadline=None)
@given(a=boxes(), b=boxes())
def test_bev_iou_symmetric_bounded(a: np.ndarray, b: np.ndarray) -> None:
    iou = bev_iou(a, b)
    np.testing.assert_allclose(iou, bev_iou(b, a).T, atol=1e-6)
    assert ((iou > -1e-9) & (iou < 1 + 1e-6)).all()
    inter = bev_intersection(a, b)
    smaller = np.minimum((a[:, 3] * a[:, 4])[:, None], (b[:, 3] * b[:, 4])[None, :])
    assert (inter <= smaller + 1e-6).all()


@settings(max_examples=40, deadline=None)
@given(a=boxes(4), b=boxes(4), shift=st.tuples(finite, finite), turn=angles)
def test_bev_iou_invariant_to_moving_both(a: np.ndarray, b: np.ndarray, shift: tuple, turn: float) -> None:
    def move(x: np.ndarray) -> np.ndarray:
        c, s = np.cos(turn), np.sin(turn)
        out = x.copy()
        out[:, 0], out[:, 1] = c * x[:, 0] - s * x[:, 1] + shift[0], s * x[:, 0] + c * x[:, 1] + shift[1]
        out[:, 6] = x[:, 6] + turn
        return out

    np.testing.assert_allclose(bev_iou(move(a), move(b)), bev_iou(a, b), atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(a=boxes(4), dz=st.floats(-3, 3))
def test_iou3d_is_bev_times_height_share(a: np.ndarray, dz: float) -> None:
    """Same footprints, shifted in z: 3D IoU follows from the height overlap alone."""
    b = a.copy()
    b[:, 2] += dz
    overlap = np.clip(a[:, 5] - abs(dz), 0, None)
    expected = overlap / (2 * a[:, 5] - overlap)
    np.testing.assert_allclose(np.diag(iou3d(a, b)), expected, atol=1e-6)
    np.testing.assert_allclose(np.diag(bev_iou(a, b)), 1.0, atol=1e-6)


def test_bev_iou_matches_raster_estimate() -> None:
    """Random pairs against a fine grid count of the overlap: independent of the polygon code."""
    rng = np.random.default_rng(0)
    xs = np.linspace(-6, 6, 1201)
    gx, gy = np.meshgrid(xs, xs)
    cell = (xs[1] - xs[0]) ** 2
    for _ in range(5):
        a = np.array([[*rng.uniform(-1, 1, 2), 0, *rng.uniform(1, 4, 2), 1, rng.uniform(-np.pi, np.pi)]])
        b = np.array([[*rng.uniform(-1, 1, 2), 0, *rng.uniform(1, 4, 2), 1, rng.uniform(-np.pi, np.pi)]])
        inside = [_raster(bb, gx, gy) for bb in (a[0], b[0])]
        inter = (inside[0] & inside[1]).sum() * cell
        assert bev_intersection(a, b)[0, 0] == pytest.approx(inter, abs=0.05)


def _raster(b: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    c, s = np.cos(b[6]), np.sin(b[6])
    dx, dy = gx - b[0], gy - b[1]
    return (np.abs(dx * c + dy * s) <= b[3] / 2) & (np.abs(-dx * s + dy * c) <= b[4] / 2)
