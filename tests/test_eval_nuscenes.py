"""nuScenes mAP / TP errors / NDS against hand-computed cases, and the submission JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perception.core import SE3, Boxes3D, rotation_z
from perception.errors import ConfigError, CorruptFileError, ShapeError, UnknownClassError
from perception.eval.nuscenes import (
    NUSCENES_CLASSES,
    angle_diff,
    cummean,
    evaluate_nuscenes,
    format_nuscenes_table,
    scale_iou,
)
from perception.eval.nuscenes_submission import read_submission, write_submission

NAMES = NUSCENES_CLASSES
CAR = NAMES.index("car")


def boxes(rows, labels, scores=None, vel=None, attrs=None, num_points=None) -> Boxes3D:
    rows = np.array(rows, np.float32).reshape(-1, 7)
    a = {}
    if attrs is not None:
        a["attribute_name"] = np.array(attrs, dtype=str)
    if num_points is not None:
        a["num_points"] = np.array(num_points)
    v = None if vel is None else np.array(vel, np.float32).reshape(-1, 2)
    return Boxes3D(rows, np.array(labels), scores=scores, velocity_xy=v, attributes=a)


def scene(n: int, label: int, dx: float = 0.0, score=lambda i: 1.0 - i / 1000, **kw):
    """n frames with one box each: gt at (10, 2i mod 20, 0), prediction shifted dx along x."""
    gt, dt = [], []
    for i in range(n):
        row = [10.0, float(i % 20) - 10, 0.0, 4.0, 2.0, 1.5, 0.3]
        gt.append(boxes([row], [label], vel=[[1.0, 0.0]], attrs=[kw.get("gt_attr", "vehicle.moving")], num_points=[10]))
        moved = [row[0] + dx, *row[1:6], row[6] + kw.get("dyaw", 0.0)]
        dt.append(
            boxes([moved], [label], scores=[score(i)], vel=[[1.0, 0.0]], attrs=[kw.get("dt_attr", "vehicle.moving")])
        )
    return gt, dt


def test_perfect_predictions_give_map_and_nds_one():
    gt, dt = [], []
    for c in range(len(NAMES)):
        g, d = scene(5, c)
        gt += g
        dt += d
    res = evaluate_nuscenes(gt, dt, NAMES)
    assert res.mean_ap == pytest.approx(1.0)
    assert res.nds == pytest.approx(1.0)
    assert np.isnan(res.tp_errors["traffic_cone"]["orient_err"]) and np.isnan(res.tp_errors["barrier"]["vel_err"])
    assert res.tp_errors["car"]["trans_err"] == pytest.approx(0.0)
    assert "NDS 1.0000" in format_nuscenes_table(res)


def test_half_recall_ap_by_hand():
    gt, dt = scene(10, CAR)
    dt = [d if i < 5 else boxes([], []).replace(scores=np.zeros(0, np.float32)) for i, d in enumerate(dt)]
    res = evaluate_nuscenes(gt, dt, NAMES, classes=("car",))
    # precision 1 up to recall 0.5, 0 after: (0.5 - 0.1) / 0.9 at every threshold
    assert res.ap["car"][2.0] == pytest.approx(0.4 / 0.9)
    assert res.mean_ap == pytest.approx(0.4 / 0.9)


def test_distance_thresholds_and_translation_error():
    gt, dt = scene(20, CAR, dx=0.7)
    res = evaluate_nuscenes(gt, dt, NAMES, classes=("car",))
    assert res.ap["car"] == {0.5: 0.0, 1.0: pytest.approx(1.0), 2.0: pytest.approx(1.0), 4.0: pytest.approx(1.0)}
    assert res.mean_ap == pytest.approx(0.75)
    assert res.tp_errors["car"]["trans_err"] == pytest.approx(0.7, abs=1e-5)
    # NDS: 5 * 0.75 + (1 - 0.7) + 4 perfect errors
    assert res.nds == pytest.approx((5 * 0.75 + 0.3 + 4) / 10, abs=1e-5)


def test_false_positives_ranked_first():
    gt, dt = scene(20, CAR)
    far = [-20.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]
    dt = [boxes([d.xyz_lwh_yaw[0], far], [CAR, CAR], scores=[0.9, 0.95]) for d in dt]
    ap = evaluate_nuscenes(gt, dt, NAMES, classes=("car",)).ap["car"][1.0]
    # all 20 FP (0.95) rank before the 20 TP (0.9): precision k / (20 + k) at recall k / 20
    k = np.arange(1, 21)
    precision = np.interp(np.arange(11, 101) / 100, k / 20, k / (20 + k))
    assert ap == pytest.approx(np.mean(np.clip(precision - 0.1, 0, None)) / 0.9)


def test_translation_error_is_cumulative_mean_resampled_on_recall():
    gt, dt = scene(10, CAR)
    offsets = np.array([0.2] * 5 + [0.4] * 5)
    dt = [
        d.replace(xyz_lwh_yaw=d.xyz_lwh_yaw + np.array([[o, 0, 0, 0, 0, 0, 0]], np.float32))
        for d, o in zip(dt, offsets)
    ]
    res = evaluate_nuscenes(gt, dt, NAMES, classes=("car",))
    running = np.cumsum(offsets) / np.arange(1, 11)
    expect = np.mean(np.interp(np.arange(11, 101) / 10, np.arange(1, 11), running))
    assert res.tp_errors["car"]["trans_err"] == pytest.approx(expect, abs=1e-5)


def test_class_range_and_empty_ground_truth_filters():
    gt, dt = scene(20, CAR)
    far_gt = boxes([[55.0, 0, 0, 4, 2, 1.5, 0]], [CAR], num_points=[5])  # beyond 50 m: dropped
    empty = boxes([[0.0, 30, 0, 4, 2, 1.5, 0]], [CAR], num_points=[0])  # no points: dropped
    gt = [boxes(np.vstack([g.xyz_lwh_yaw, far_gt.xyz_lwh_yaw]), [CAR, CAR], num_points=[10, 5]) for g in gt]
    assert evaluate_nuscenes(gt, dt, NAMES, classes=("car",)).mean_ap == pytest.approx(1.0)
    gt2 = [boxes(np.vstack([g.xyz_lwh_yaw[:1], empty.xyz_lwh_yaw]), [CAR, CAR], num_points=[10, 0]) for g in gt]
    dt2 = [boxes(np.vstack([d.xyz_lwh_yaw, empty.xyz_lwh_yaw]), [CAR, CAR], scores=[0.5, 0.9]) for d in dt]
    assert evaluate_nuscenes(gt2, dt2, NAMES, classes=("car",)).mean_ap < 0.6  # the box on it is a FP


def test_barrier_orientation_has_period_pi():
    barrier = NAMES.index("barrier")
    gt, dt = scene(20, barrier, dyaw=np.pi)
    assert evaluate_nuscenes(gt, dt, NAMES, classes=("barrier",)).tp_errors["barrier"]["orient_err"] < 1e-5
    gt, dt = scene(20, CAR, dyaw=np.pi)
    assert evaluate_nuscenes(gt, dt, NAMES, classes=("car",)).tp_errors["car"]["orient_err"] == pytest.approx(
        np.pi, 1e-5
    )


def test_attribute_error_and_unknown_attribute():
    gt, dt = scene(20, CAR, dt_attr="vehicle.parked")
    assert evaluate_nuscenes(gt, dt, NAMES, classes=("car",)).tp_errors["car"]["attr_err"] == pytest.approx(1.0)
    gt, dt = scene(20, CAR, gt_attr="")
    assert evaluate_nuscenes(gt, dt, NAMES, classes=("car",)).tp_errors["car"]["attr_err"] == 1.0  # all NaN -> 1


def test_helpers_match_definitions():
    assert cummean(np.array([1.0, np.nan, 3.0])).tolist() == [1.0, 1.0, 2.0]
    assert angle_diff(np.array([0.1]), np.array([2 * np.pi - 0.1]), 2 * np.pi)[0] == pytest.approx(0.2)
    assert scale_iou(np.array([[4.0, 2, 1]]), np.array([[2.0, 2, 1]]))[0] == pytest.approx(0.5)


def test_no_predictions_gives_zero_ap_and_unit_errors():
    gt, _ = scene(5, CAR)
    empty = [boxes([], []).replace(scores=np.zeros(0, np.float32)) for _ in gt]
    res = evaluate_nuscenes(gt, empty, NAMES, classes=("car",))
    assert res.mean_ap == 0.0 and res.tp_errors["car"]["trans_err"] == 1.0 and res.nds == 0.0


def test_bad_inputs():
    gt, dt = scene(2, CAR)
    with pytest.raises(ShapeError, match="2 ground-truth frames but 1"):
        evaluate_nuscenes(gt, dt[:1], NAMES)
    with pytest.raises(ConfigError, match="not in the dataset"):
        evaluate_nuscenes(gt, dt, NAMES, classes=("tram",))
    with pytest.raises(ShapeError, match="limit is 0"):
        evaluate_nuscenes(gt, dt, NAMES, max_boxes_per_frame=0)


def test_submission_round_trip_to_global_frame(tmp_path):
    _, dt = scene(2, CAR)
    pose = SE3.from_rt(rotation_z(0.5), [100.0, -50.0, 1.0])
    path = tmp_path / "results.json"
    write_submission(path, {"tokA": dt[0], "tokB": dt[1]}, NAMES, poses={"tokA": pose, "tokB": pose})
    raw = json.loads(path.read_text())
    assert raw["meta"]["use_lidar"] and raw["results"]["tokA"][0]["size"] == [2.0, 4.0, 1.5]
    _, back = read_submission(path, NAMES)
    want = dt[0].transformed(pose)
    np.testing.assert_allclose(back["tokA"].xyz_lwh_yaw, want.xyz_lwh_yaw, atol=1e-4)
    np.testing.assert_allclose(back["tokA"].velocity_xy, want.velocity_xy, atol=1e-5)
    assert back["tokA"].attributes["attribute_name"].tolist() == ["vehicle.moving"]


def test_submission_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CorruptFileError, match="bad.json"):
        read_submission(bad, NAMES)
    bad.write_text(json.dumps({"results": {"t": [{"translation": [0, 0, 0]}]}}))
    with pytest.raises(CorruptFileError, match="sample t: box without"):
        read_submission(bad, NAMES)
    row = {
        "translation": [0, 0, 0],
        "size": [1, 1, 1],
        "rotation": [1, 0, 0, 0],
        "detection_name": "tram",
        "detection_score": 1,
    }
    bad.write_text(json.dumps({"results": {"t": [row]}}))
    with pytest.raises(UnknownClassError, match="tram"):
        read_submission(bad, NAMES)
