"""Confusion matrix with a background row / column, derived metrics, text table and PNG plots."""

from __future__ import annotations

import numpy as np
import pytest

from perception.core import Boxes2D, Boxes3D
from perception.errors import CorruptFileError, DataError, ShapeError
from perception.eval.classification import classification_report, format_classification_table, match_boxes
from perception.eval.kitti import KittiResult
from perception.eval.plots import plot_confusion_matrix, plot_kitti_pr, plot_training_curves, read_metrics_csv

NAMES = ("car", "pedestrian")


def b3(xs, labels, scores=None) -> Boxes3D:
    return Boxes3D(np.array([[x, 0, 0, 4, 2, 1.5, 0] for x in xs], np.float32).reshape(-1, 7), labels, scores=scores)


def report():
    # frame 1: car found as car, pedestrian found as car, a car missed, a background detection
    gt = [b3([0, 10, 20], [0, 1, 0]), b3([0], [1])]
    dt = [b3([0.2, 10.1, 40], [0, 0, 1], [0.9, 0.8, 0.7]), b3([0.1, 30], [1, 0], [0.9, 0.1])]
    return classification_report(gt, dt, NAMES)


def test_confusion_matrix_counts_matches_misses_and_background():
    r = report()
    assert r.confusion.tolist() == [[1, 0, 1], [1, 1, 0], [0, 1, 0]]  # last detection is below the score threshold


def test_metrics_from_the_matrix():
    r = report()
    np.testing.assert_allclose(r.precision, [1 / 2, 1 / 2])
    np.testing.assert_allclose(r.recall, [1 / 2, 1 / 2])
    np.testing.assert_allclose(r.f1, [1 / 2, 1 / 2])
    assert r.accuracy == pytest.approx(2 / 5)
    assert r.matched_accuracy == pytest.approx(2 / 3)
    assert r.summary()["cls/f1"] == pytest.approx(0.5)


def test_table_has_background_row_and_column():
    table = format_classification_table(report())
    assert "background" in table.splitlines()[0] and table.splitlines()[3].startswith("background")
    assert "matched accuracy 0.6667" in table


def test_greedy_matching_by_score_and_2d_boxes():
    gt = Boxes2D(np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float), [0, 1])
    dt = Boxes2D(np.array([[1, 0, 11, 10], [0, 0, 10, 10]], float), [1, 0], scores=np.array([0.5, 0.9]))
    assert match_boxes(gt, dt, 0.5).tolist() == [-1, 0]  # the higher score takes the better box first


def test_frame_count_mismatch():
    with pytest.raises(ShapeError):
        classification_report([b3([0], [0])], [], NAMES)


def test_confusion_png(tmp_path):
    out = plot_confusion_matrix(report(), tmp_path / "cm.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_kitti_pr_pngs(tmp_path):
    curve = {"Car": {d: np.linspace(1, 0, 41) for d in ("easy", "moderate", "hard")}}
    res = KittiResult(ap_r11={}, ap_r40={}, precision={"bev": curve, "3d": curve}, num_gt={})
    paths = plot_kitti_pr(res, tmp_path)
    assert sorted(p.name for p in paths) == ["kitti_pr_3d.png", "kitti_pr_bev.png"]
    assert all(p.stat().st_size > 5000 for p in paths)


def test_training_curves_png_and_csv_errors(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,loss,loss_cls,lr,ap_3d_car\n1,2.0,1.0,0.001,\n2,1.5,0.7,0.0005,40.1\n")
    cols = read_metrics_csv(csv)
    assert np.isnan(cols["ap_3d_car"][0]) and cols["lr"][1] == 0.0005
    out = plot_training_curves(csv, tmp_path / "curves.png")
    assert out.stat().st_size > 5000
    csv.write_text("epoch,loss\n1,abc\n")
    with pytest.raises(CorruptFileError, match="metrics.csv:2: column 'loss'"):
        plot_training_curves(csv, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
    with pytest.raises(DataError, match="not found"):
        read_metrics_csv(tmp_path / "missing.csv")


def test_detection_pr_for_each_metric(tmp_path):
    from perception.eval.nuscenes import evaluate_nuscenes
    from perception.eval.plots import plot_detection_pr
    from perception.eval.waymo import evaluate_waymo

    gt = [b3([0, 10], [0, 1]) for _ in range(3)]
    dt = [b3([0.3, 10.2], [0, 1], [0.9, 0.6]) for _ in range(3)]
    nus = evaluate_nuscenes(gt, dt, NAMES, classes=NAMES)
    waymo = evaluate_waymo(gt, dt, NAMES, classes=NAMES, iou_thresholds={"car": 0.5})
    paths = plot_detection_pr(nus, tmp_path) + plot_detection_pr(waymo, tmp_path)
    assert [p.name for p in paths] == ["nuscenes_pr.png", "waymo_pr.png"]
    assert all(p.stat().st_size > 5000 for p in paths)
    assert plot_detection_pr(object(), tmp_path) == []
