"""Waymo AP / APH against hand-computed cases and a brute-force per-frame Hungarian reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from perception.core import Boxes3D, iou3d
from perception.errors import ConfigError, ShapeError
from perception.eval.waymo import (
    SCORE_CUTOFFS,
    evaluate_waymo,
    format_waymo_table,
    heading_accuracy,
    mean_average_precision,
)

NAMES = ("Vehicle", "Pedestrian", "Cyclist")


def boxes(rows, labels, scores=None, num_points=None, difficulty=None) -> Boxes3D:
    attrs = {}
    if num_points is not None:
        attrs["num_points"] = np.array(num_points)
    if difficulty is not None:
        attrs["difficulty"] = np.array(difficulty)
    return Boxes3D(np.array(rows, np.float32).reshape(-1, 7), np.array(labels), scores=scores, attributes=attrs)


def car(x: float, y: float = 0.0, yaw: float = 0.0, width: float = 2.0) -> list[float]:
    return [x, y, 0.0, 4.0, width, 1.5, yaw]


def frames(n: int, shift: float = 0.0, dyaw: float = 0.0, label: int = 0):
    """One box per frame; square in BEV when rotated, so that IoU does not depend on ``dyaw``."""
    width = 4.0 if dyaw else 2.0
    gt = [boxes([car(10, 5 * i, 0.0, width)], [label], num_points=[50]) for i in range(n)]
    dt = [boxes([car(10 + shift, 5 * i, dyaw, width)], [label], scores=[0.9]) for i in range(n)]
    return gt, dt


def test_map_worked_examples():
    assert mean_average_precision(np.array([0.5]), np.array([1.0])) == pytest.approx(0.5)
    # precision 1 up to recall 0.5, then 0.5 up to 1: the envelope ramps over one 0.05 step
    assert mean_average_precision(np.array([1.0, 0.5]), np.array([0.5, 1.0])) == pytest.approx(0.5 + 0.0375 + 0.225)
    assert mean_average_precision(np.array([1.0]), np.array([0.0])) == 0.0


@pytest.mark.parametrize(
    "precision, recall, delta, expect",
    [  # the cases of the official metrics_utils_test.cc (ComputeMeanAveragePrecision)
        ([], [], 0.05, 0.0),
        ([0.1], [0.2], 0.05, 0.2 * 0.1),
        ([0.1, 0.05], [0.2, 1.0], 0.05, 0.05 * 0.8 + 0.1 * 0.2 + (0.1 - 0.05) * 0.5 * 0.05),
        ([0.1, 0.05], [0.2, 1.0], 1.0, 0.2 * 0.1 + 0.5 * (0.1 + 0.05) * 0.8),
        ([0.1, 0.0, 0.05], [0.2, 0.4, 1.0], 0.05, 0.05 * 0.8 + 0.1 * 0.2 + (0.1 - 0.05) * 0.5 * 0.05),
    ],
)
def test_map_official_examples(precision, recall, delta, expect):
    assert mean_average_precision(np.array(precision), np.array(recall), delta) == pytest.approx(expect, abs=1e-6)


def test_perfect_predictions_give_one():
    gt, dt = frames(5)
    res = evaluate_waymo(gt, dt, NAMES, classes=("Vehicle",))
    assert res.ap["Vehicle"] == {1: pytest.approx(1.0), 2: pytest.approx(1.0)}
    assert res.aph["Vehicle"][2] == pytest.approx(1.0)
    assert "Vehicle" in format_waymo_table(res)


@pytest.mark.parametrize("dyaw, aph", [(np.pi, 0.0), (np.pi / 2, 0.5), (-np.pi / 4, 0.75)])
def test_heading_weighting(dyaw, aph):
    gt, dt = frames(5, dyaw=dyaw)
    res = evaluate_waymo(gt, dt, NAMES, classes=("Vehicle",))
    assert res.ap["Vehicle"][1] == pytest.approx(1.0)
    assert res.aph["Vehicle"][1] == pytest.approx(aph, abs=1e-6)


def test_heading_accuracy_wraps():
    assert heading_accuracy(np.array([3.1]), np.array([-3.1]))[0] == pytest.approx(1 - (2 * np.pi - 6.2) / np.pi)


def test_iou_threshold_per_class():
    shift = 0.8  # IoU of two 4 m boxes shifted 0.8 m: 3.2 / 4.8 = 0.667
    for label, name, expect in ((0, "Vehicle", 0.0), (1, "Pedestrian", 1.0)):
        gt, dt = frames(5, shift=shift, label=label)
        assert evaluate_waymo(gt, dt, NAMES, classes=(name,)).ap[name][2] == pytest.approx(expect)


def test_level2_includes_level1_and_level1_counts_matches_to_level2():
    l1 = [boxes([car(10, i), car(30, i)], [0, 0], num_points=[50, 3]) for i in range(10)]  # second box: LEVEL_2
    only_l1 = [boxes([car(10, i)], [0], scores=[0.9]) for i in range(10)]
    res = evaluate_waymo(l1, only_l1, NAMES, classes=("Vehicle",))
    assert res.ap["Vehicle"][1] == pytest.approx(1.0)
    assert res.ap["Vehicle"][2] == pytest.approx(0.5)  # precision 1 up to recall 0.5
    only_l2 = [boxes([car(30, i)], [0], scores=[0.9]) for i in range(10)]
    res = evaluate_waymo(l1, only_l2, NAMES, classes=("Vehicle",))
    # official: a match to a LEVEL_2 box is a TP at LEVEL_1 too, while the missed LEVEL_1 boxes are FN
    assert res.ap["Vehicle"][1] == pytest.approx(0.5) and res.ap["Vehicle"][2] == pytest.approx(0.5)


def test_boxes_without_points_are_dropped_and_labelled_difficulty_wins():
    gt = [boxes([car(10, i), car(30, i)], [0, 0], num_points=[50, 0]) for i in range(5)]
    dt = [boxes([car(10, i)], [0], scores=[0.9]) for i in range(5)]
    assert evaluate_waymo(gt, dt, NAMES, classes=("Vehicle",)).ap["Vehicle"][2] == pytest.approx(1.0)
    gt = [boxes([car(10, i)], [0], num_points=[50], difficulty=[2]) for i in range(5)]
    res = evaluate_waymo(gt, [boxes([], [], scores=np.zeros(0)) for _ in range(5)], NAMES, classes=("Vehicle",))
    assert res.curves["Vehicle"][1].recall.max() == 0.0  # a LEVEL_2 box missed is no FN at LEVEL_1


def test_hungarian_beats_score_first():
    # A (score .9) overlaps GT1 0.818 and GT2 0.739; B (.8) overlaps GT1 0.905, GT2 0.54:
    # score-first matching finds 1 TP, the Hungarian (max IoU sum) finds 2
    gt = [boxes([car(0, 5 * i), car(1.0, 5 * i)], [0, 0], num_points=[50, 50]) for i in range(5)]
    dt = [boxes([car(0.4, 5 * i), car(-0.2, 5 * i)], [0, 0], scores=[0.9, 0.8]) for i in range(5)]
    res = evaluate_waymo(gt, dt, NAMES, classes=("Vehicle",))
    assert res.curves["Vehicle"][2].recall[0] == pytest.approx(1.0)
    assert res.ap["Vehicle"][2] == pytest.approx(1.0)


CHECKED = np.arange(0, len(SCORE_CUTOFFS), 10)  # every 10th cutoff keeps the test fast


def _brute_force_counts(gt: list[Boxes3D], dt: list[Boxes3D], thr: float) -> tuple[np.ndarray, np.ndarray]:
    """TP and FP at the CHECKED cutoffs by running the Hungarian on every frame at each."""
    tp, fp = np.zeros(len(CHECKED)), np.zeros(len(CHECKED))
    for g, d in zip(gt, dt):
        for c, cut in enumerate(SCORE_CUTOFFS[CHECKED]):
            keep = d.scores >= cut
            iou = iou3d(d.xyz_lwh_yaw[keep], g.xyz_lwh_yaw)
            r, k = linear_sum_assignment(np.where(iou >= thr, np.round(iou * 1e6), 0), maximize=True)
            n = int((iou[r, k] >= thr).sum())
            tp[c] += n
            fp[c] += keep.sum() - n
    return tp, fp


def test_vectorised_counts_match_brute_force():
    rng = np.random.default_rng(3)
    gt, dt = [], []
    for _ in range(30):
        n = rng.integers(0, 5)
        rows = [car(rng.uniform(0, 12), rng.uniform(0, 4), rng.uniform(-3, 3)) for _ in range(n)]
        gt.append(boxes(rows, [0] * n, num_points=[50] * n))
        drows = [
            [r[0] + rng.normal(0, 0.4), r[1] + rng.normal(0, 0.3), 0, 4, 2, 1.5, r[6]] for r in rows for _ in range(2)
        ]
        dt.append(boxes(drows, [0] * len(drows), scores=np.round(rng.random(len(drows)), 2)))
    res = evaluate_waymo(gt, dt, NAMES, classes=("Vehicle",))
    tp, fp = _brute_force_counts(gt, dt, 0.7)
    curve = res.curves["Vehicle"][2]
    n_gt = sum(len(g) for g in gt)
    np.testing.assert_allclose(curve.recall[CHECKED], tp / n_gt, atol=1e-6)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.where(tp == 0, 1.0, tp / (tp + fp))
    np.testing.assert_allclose(curve.precision[CHECKED], want, atol=1e-6)


def test_bad_inputs():
    gt, dt = frames(2)
    with pytest.raises(ShapeError, match="2 ground-truth frames but 1"):
        evaluate_waymo(gt, dt[:1], NAMES)
    with pytest.raises(ConfigError, match="no IoU threshold"):
        evaluate_waymo(gt, dt, ("Truck",), classes=("Truck",))
    with pytest.raises(ConfigError, match="box_type"):
        evaluate_waymo(gt, dt, NAMES, box_type="2d")


def test_official_one_shard_example():
    """detection_metrics_test.cc ``OneShard``: boxes 100 x 1 x 1 m, predictions of IoU 0.9 (score 0)
    and 0.6 (score 0.5) on one ground truth, in two frames: mAP = mAPH = 1."""

    def obj(iou: float) -> list[float]:
        return [0.0, 0.0, 0.0, 100 * iou, 1.0, 1.0, 0.0]

    gt = [boxes([obj(1.0)], [0], num_points=[50]) for _ in range(2)]
    dt = [boxes([obj(0.9), obj(0.6)], [0, 0], scores=[0.0, 0.5]) for _ in range(2)]
    res = evaluate_waymo(gt, dt, NAMES, classes=("Vehicle",), iou_thresholds={"Vehicle": 0.5})
    curve = res.curves["Vehicle"][2]
    assert (curve.precision[0], curve.recall[0]) == (0.5, 1.0)  # cutoff 0: the Hungarian takes IoU 0.9, 0.6 is a FP
    assert (curve.precision[50], curve.recall[50]) == (1.0, 1.0)  # cutoff 0.5: only the 0.6 box, a TP
    assert (curve.precision[100], curve.recall[100]) == (1.0, 0.0)  # cutoff 1: nothing left
    assert res.ap["Vehicle"][2] == pytest.approx(1.0) and res.aph["Vehicle"][2] == pytest.approx(1.0)
