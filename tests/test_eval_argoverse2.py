"""Argoverse 2 AP / ATE / ASE / AOE / CDS against hand-computed cases of the official definitions."""

from __future__ import annotations

import numpy as np
import pytest

from perception.core import Boxes3D
from perception.errors import ConfigError, ShapeError
from perception.eval.argoverse2 import average_precision, evaluate_av2, format_av2_table, wrap_angles

NAMES = ("REGULAR_VEHICLE", "PEDESTRIAN")


def box(x: float, y: float = 0.0, yaw: float = 0.0, size=(4.0, 2.0, 1.5)) -> list[float]:
    return [x, y, 0.0, *size, yaw]


def frames(n: int, dx: float = 0.0, dyaw: float = 0.0, size=(4.0, 2.0, 1.5)):
    gt = [Boxes3D(np.array([box(10, 5 * i)]), [0], attributes={"num_points": [20]}) for i in range(n)]
    dt = [Boxes3D(np.array([box(10 + dx, 5 * i, dyaw, size)]), [0], scores=[0.9]) for i in range(n)]
    return gt, dt


def test_perfect_predictions_score_one():
    gt, dt = frames(10)
    res = evaluate_av2(gt, dt, NAMES, classes=("REGULAR_VEHICLE",))
    assert res.mean == pytest.approx({"AP": 1.0, "ATE": 0.0, "ASE": 0.0, "AOE": 0.0, "CDS": 1.0})
    assert "REGULAR_VEHICLE" in format_av2_table(res)


def test_classes_without_ground_truth_count_with_defaults():
    gt, dt = frames(10)
    res = evaluate_av2(gt, dt, NAMES, classes=NAMES)
    assert res.metrics["PEDESTRIAN"] == {"AP": 0.0, "ATE": 2.0, "ASE": 1.0, "AOE": np.pi, "CDS": 0.0}
    assert res.mean["CDS"] == pytest.approx(0.5)


def test_translation_error_thresholds_and_cds():
    gt, dt = frames(10, dx=0.7)
    m = evaluate_av2(gt, dt, NAMES, classes=("REGULAR_VEHICLE",))
    assert m.ap["REGULAR_VEHICLE"] == {
        0.5: 0.0,
        1.0: pytest.approx(1.0),
        2.0: pytest.approx(1.0),
        4.0: pytest.approx(1.0),
    }
    cds = 0.75 * ((1 - 0.7 / 2) + 1 + 1) / 3
    assert m.metrics["REGULAR_VEHICLE"]["CDS"] == pytest.approx(cds, abs=1e-6)


def test_scale_and_orientation_errors():
    gt, dt = frames(10, dyaw=np.pi / 2, size=(4.0, 2.0, 3.0))
    m = evaluate_av2(gt, dt, NAMES, classes=("REGULAR_VEHICLE",)).metrics["REGULAR_VEHICLE"]
    assert m["ASE"] == pytest.approx(1 - 12 / 24)  # min volume / max volume of the sizes
    assert m["AOE"] == pytest.approx(np.pi / 2)


def test_second_detection_of_the_same_object_is_false_positive():
    gt = [
        Boxes3D(np.array([box(10, 5 * i), box(11.5, 5 * i)]), [0, 0], attributes={"num_points": [5, 5]})
        for i in range(10)
    ]
    # A (0.9) sits on GT1; B (0.8) is nearest to GT1 as well, although GT2 is only 0.9 m away: FP
    dt = [Boxes3D(np.array([box(10, 5 * i), box(10.6, 5 * i)]), [0, 0], scores=[0.9, 0.8]) for i in range(10)]
    res = evaluate_av2(gt, dt, NAMES, classes=("REGULAR_VEHICLE",))
    # by score: the ten A (TP) then the ten B (FP); GT2 is never found
    assert res.ap["REGULAR_VEHICLE"][4.0] == pytest.approx(average_precision(np.repeat([True, False], 10), 20))
    assert res.ap["REGULAR_VEHICLE"][4.0] == pytest.approx((50 + 0.5) / 101)  # at recall .5 the last FP counts


def test_range_and_empty_ground_truth_are_not_counted():
    gt = [
        Boxes3D(
            np.array([box(10, 5 * i), box(160, 0), box(20, 5 * i)]), [0, 0, 0], attributes={"num_points": [5, 5, 0]}
        )
        for i in range(10)
    ]
    _, dt = frames(10)
    assert evaluate_av2(gt, dt, NAMES, classes=("REGULAR_VEHICLE",)).mean["AP"] == pytest.approx(1.0)


def test_only_first_100_detections_per_frame_count():
    # GT2 draws 100 high-scoring detections (the first is a TP); the detection of GT1 is the 101st
    gt = [Boxes3D(np.array([box(10, 0), box(30, 40)]), [0, 0], attributes={"num_points": [5, 5]}) for _ in range(5)]
    crowd = [box(30 + 0.5 * i, 40) for i in range(100)]
    dt = [Boxes3D(np.array([*crowd, box(10, 0)]), [0] * 101, scores=[0.9] * 100 + [0.1]) for _ in range(5)]
    capped = evaluate_av2(gt, dt, NAMES, classes=("REGULAR_VEHICLE",))
    assert capped.mean["AP"] == pytest.approx(average_precision(np.tile([True] + [False] * 99, 5), 10))
    full = evaluate_av2(gt, dt, NAMES, classes=("REGULAR_VEHICLE",), max_detections_per_class=101)
    assert full.mean["AP"] > capped.mean["AP"]


def test_average_precision_voc_interpolation():
    # TP, TP, FP, TP of 4 objects: precision 1, 1, .75 (interpolated) at recall .25, .5, .75
    ap = average_precision(np.array([True, True, False, True]), 4)
    assert ap == pytest.approx((50 * 1.0 + 26 * 0.75) / 101)


def test_wrap_angles_folds_into_half_turn():
    np.testing.assert_allclose(
        wrap_angles(np.array([0.5, -0.5, 1.5 * np.pi, -1.9 * np.pi])), [0.5, 0.5, 0.5 * np.pi, 0.1 * np.pi]
    )


def test_bad_inputs():
    gt, dt = frames(2)
    with pytest.raises(ShapeError, match="2 ground-truth frames but 1"):
        evaluate_av2(gt, dt[:1], NAMES)
    with pytest.raises(ConfigError, match="not in the dataset"):
        evaluate_av2(gt, dt, NAMES)  # default classes: the 26 AV2 names


def test_real_annotations_perfect_and_degraded(shared_data):
    from pyarrow import feather

    from perception.eval.argoverse2 import AV2_CLASSES

    path = next((shared_data / "argoverse2/sensor/val").glob("7fab2350*/annotations.feather"))
    cols = {k: np.asarray(v) for k, v in feather.read_table(path).to_pydict().items()}
    keep = np.isin(cols["category"], AV2_CLASSES)
    cols = {k: v[keep] for k, v in cols.items()}
    yaw = 2 * np.arctan2(cols["qz"], cols["qw"])
    boxes = np.column_stack([cols[c] for c in ("tx_m", "ty_m", "tz_m", "length_m", "width_m", "height_m")] + [yaw])
    labels = np.array([AV2_CLASSES.index(c) for c in cols["category"]])
    gt, dt, dropped = [], [], []
    for t in np.unique(cols["timestamp_ns"])[:20]:
        rows = np.nonzero(cols["timestamp_ns"] == t)[0]
        gt.append(Boxes3D(boxes[rows], labels[rows], attributes={"num_points": cols["num_interior_pts"][rows]}))
        # copies of the boxes that count (a copy of a box without points is a false positive)
        seen = rows[(cols["num_interior_pts"][rows] > 0) & (np.linalg.norm(boxes[rows, :3], axis=1) < 150)]
        dt.append(Boxes3D(boxes[seen], labels[seen], scores=np.linspace(0.9, 0.1, len(seen))))
        dropped.append(dt[-1][np.arange(0, len(seen), 2)])
    assert any((g.attributes["num_points"] == 0).any() for g in gt)  # the filter has work to do
    present = tuple(sorted({AV2_CLASSES[i] for g in gt for i in g.labels[g.attributes["num_points"] > 0]}))
    perfect = evaluate_av2(gt, dt, AV2_CLASSES, classes=present)
    assert perfect.mean == pytest.approx({"AP": 1.0, "ATE": 0.0, "ASE": 0.0, "AOE": 0.0, "CDS": 1.0}, abs=1e-6)
    half = evaluate_av2(gt, dropped, AV2_CLASSES, classes=present)
    assert 0.2 < half.mean["CDS"] < 0.8
