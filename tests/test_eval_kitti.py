"""KITTI AP against hand-computed devkit cases: recall sampling, ignore rules, DontCare, AOS."""

from __future__ import annotations

import numpy as np
import pytest

from perception.core import iou3d
from perception.data.kitti_format import KittiObjects, read_label_file
from perception.errors import ConfigError, ShapeError
from perception.eval.kitti import camera_boxes7, evaluate_kitti, format_kitti_table, min_overlap
from perception.eval.kitti_match import get_thresholds


def objs(rows: list[tuple], scores: list[float] | None = None) -> KittiObjects:
    """rows: (type, x1, y1, x2, y2, x, z, ry[, trunc, occ, alpha]) with a 1.5 x 1.6 x 3.9 car box."""
    n = len(rows)
    if n == 0:
        out = KittiObjects.empty()
        return out if scores is None else KittiObjects(**{**out.__dict__, "score": np.zeros(0)})
    full = [r + (0.0, 0, 0.0)[len(r) - 8 :] if len(r) < 11 else r for r in rows]
    return KittiObjects(
        type=np.array([r[0] for r in full], dtype="<U16"),
        truncated=np.array([r[8] for r in full], float), occluded=np.array([r[9] for r in full], np.int64),
        alpha=np.array([r[10] for r in full], float), bbox=np.array([r[1:5] for r in full], float),
        dimensions_hwl=np.tile([1.5, 1.6, 3.9], (n, 1)), location=np.array([[r[5], 1.6, r[6]] for r in full], float),
        rotation_y=np.array([r[7] for r in full], float), score=None if scores is None else np.array(scores, float),
    )  # fmt: skip


CAR = ("Car", 100, 100, 200, 180, 2.0, 20.0, 0.3)  # 80 px tall, easy
N = 50  # the devkit needs > 40 counted objects to sample all 41 recall points


def shifted(row: tuple, dx: float) -> tuple:
    """The same box dx metres to the side, and 50 px per metre to the right in the image."""
    px = 50 * dx
    return (row[0], row[1] + px, row[2], row[3] + px, row[4], row[5] + dx) + row[6:]


def test_perfect_predictions_score_100_everywhere():
    gt = [objs([CAR, shifted(CAR, 5.0)]) for _ in range(N)]
    dt = [objs([CAR, shifted(CAR, 5.0)], [0.9, 0.8]) for _ in range(N)]
    res = evaluate_kitti(gt, dt, classes=("Car",))
    for m in ("bbox", "bev", "3d", "aos"):
        for d in ("easy", "moderate", "hard"):
            assert res.ap_r40[m]["Car"][d] == pytest.approx(100.0)
            assert res.ap_r11[m]["Car"][d] == pytest.approx(100.0)
    assert res.num_gt["Car"] == {"easy": 2 * N, "moderate": 2 * N, "hard": 2 * N}


def test_few_objects_cannot_reach_full_ap():
    """With 20 objects the devkit samples only 20 of the 41 recall points: perfect gives 47.5."""
    res = evaluate_kitti([objs([CAR])] * 20, [objs([CAR], [0.9])] * 20, classes=("Car",), metrics=("3d",))
    assert res.ap_r40["3d"]["Car"]["easy"] == pytest.approx(19 / 40 * 100)


def test_single_counted_object_gives_r40_zero_r11_one_eleventh():
    res = evaluate_kitti([objs([CAR])], [objs([CAR], [0.9])], classes=("Car",))
    assert res.ap_r40["3d"]["Car"]["easy"] == 0.0
    assert res.ap_r11["3d"]["Car"]["easy"] == pytest.approx(100 / 11)


def test_hand_computed_precision_steps():
    # 4 GT in 4 frames; detections by score: TP .9, FP .8, TP .7, TP .6, FP .5, TP .4
    # thresholds .9/.7/.6/.4 -> precision 1, 2/3, 3/4, 4/6 -> monotone 1, .75, .75, .667
    far = shifted(CAR, 30.0)
    gt = [objs([CAR]) for _ in range(4)]
    dt = [objs([CAR, far], [0.9, 0.8]), objs([CAR, far], [0.7, 0.5]), objs([CAR], [0.6]), objs([CAR], [0.4])]
    res = evaluate_kitti(gt, dt, classes=("Car",), metrics=("3d",))
    assert res.ap_r40["3d"]["Car"]["easy"] == pytest.approx((0.75 + 0.75 + 4 / 6) / 40 * 100)
    assert res.ap_r11["3d"]["Car"]["easy"] == pytest.approx(100 / 11)


def test_half_recall_without_false_positives():
    gt = [objs([CAR]) for _ in range(40)]
    dt = [objs([CAR], [1.0 - i / 100]) if i < 20 else objs([], []) for i in range(40)]
    res = evaluate_kitti(gt, dt, classes=("Car",), metrics=("bev",))
    assert res.ap_r40["bev"]["Car"]["moderate"] == pytest.approx(19 / 40 * 100)  # samples 1..19
    assert res.ap_r11["bev"]["Car"]["moderate"] == pytest.approx(5 / 11 * 100)  # samples 0,4,..,16


def test_get_thresholds_one_per_recall_step():
    assert len(get_thresholds(np.linspace(1, 0.01, 100), 100)) == 41
    assert get_thresholds(np.array([0.5]), 1).tolist() == [0.5]


def test_dontcare_hides_false_positive_in_2d_only():
    dc = ("DontCare", 400, 100, 500, 200, -1000.0, -1000.0, -10.0)
    fp_in_dc = ("Car", 410, 110, 490, 190, 10.0, 30.0, 0.0)
    gt = [objs([CAR, dc]) for _ in range(N)]
    dt = [objs([CAR, fp_in_dc], [0.9, 0.95]) for _ in range(N)]
    res = evaluate_kitti(gt, dt, classes=("Car",), metrics=("bbox", "bev"))
    assert res.ap_r40["bbox"]["Car"]["easy"] == pytest.approx(100.0)
    # BEV: every threshold sees N TP and N FP -> precision 0.5 at all 41 recall samples
    assert res.ap_r40["bev"]["Car"]["easy"] == pytest.approx(50.0)


@pytest.mark.parametrize("neighbour, expect_full", [("Van", True), ("Truck", False)])
def test_van_is_an_ignored_neighbour_of_car(neighbour, expect_full):
    other = (neighbour,) + shifted(CAR, 6.0)[1:]
    gt = [objs([CAR, other]) for _ in range(N)]
    dt = [objs([CAR, other[:0] + ("Car",) + other[1:]], [0.9, 0.95]) for _ in range(N)]
    ap = evaluate_kitti(gt, dt, classes=("Car",), metrics=("3d",)).ap_r40["3d"]["Car"]["easy"]
    assert (ap == pytest.approx(100.0)) is expect_full


def test_difficulty_filters_height_occlusion_truncation():
    small = ("Car", 100, 100, 200, 130, 2.0, 40.0, 0.3)  # 30 px: moderate and hard, not easy
    occluded = CAR + (0.0, 2, 0.0)  # occlusion 2: hard only
    truncated = shifted(CAR, 8.0) + (0.4, 0, 0.0)  # truncation 0.4: hard only
    gt = [objs([small, occluded, truncated]) for _ in range(10)]
    res = evaluate_kitti(gt, [objs([], []) for _ in range(10)], classes=("Car",), metrics=("3d",))
    assert res.num_gt["Car"] == {"easy": 0, "moderate": 10, "hard": 30}


def test_detection_on_ignored_ground_truth_is_not_false_positive():
    small = ("Car", 100, 100, 200, 130, 2.0, 40.0, 0.3)  # not counted at easy
    gt = [objs([CAR, small]) for _ in range(N)]
    dt = [objs([CAR, small], [0.9, 0.95]) for _ in range(N)]
    res = evaluate_kitti(gt, dt, classes=("Car",), metrics=("3d",))
    assert res.ap_r40["3d"]["Car"]["easy"] == pytest.approx(100.0)


def test_overlap_threshold_is_strict_and_loose_set_is_lower():
    # shifting 1.0 m along z of a 3.9 m long box (ry = 0: length along x), 0.5 m lateral
    near = ("Car", 100, 100, 200, 180, 2.0 + 1.3, 20.0, 0.0)
    base = ("Car", 100, 100, 200, 180, 2.0, 20.0, 0.0)
    iou = iou3d(camera_boxes7(objs([base])), camera_boxes7(objs([near])))[0, 0]
    assert 0.5 < iou < 0.7
    gt, dt = [objs([base]) for _ in range(N)], [objs([near], [0.9]) for _ in range(N)]
    strict = evaluate_kitti(gt, dt, classes=("Car",), metrics=("3d",)).ap_r40["3d"]["Car"]["easy"]
    loose = evaluate_kitti(gt, dt, classes=("Car",), metrics=("3d",), overlaps="loose").ap_r40["3d"]["Car"]["easy"]
    assert strict == 0.0 and loose == pytest.approx(100.0)
    assert min_overlap("bbox", "Car", "loose") == 0.7 and min_overlap("bev", "Pedestrian", "loose") == 0.25


def test_identical_rotated_boxes_iou_one():
    """Regression: a widely copied Python port scores bit-identical rotated boxes at ~0; the devkit at 1."""
    b = camera_boxes7(objs([("Car", 0, 0, 10, 50, 3.1, 17.4, 1.234)]))
    assert iou3d(b, b)[0, 0] == pytest.approx(1.0)


def test_aos_penalises_flipped_orientation():
    flipped = CAR + (0.0, 0, np.pi)
    gt = [objs([CAR]) for _ in range(N)]
    res = evaluate_kitti(gt, [objs([flipped], [0.9]) for _ in range(N)], classes=("Car",), metrics=("bbox",))
    assert res.ap_r40["bbox"]["Car"]["easy"] == pytest.approx(100.0)
    assert res.ap_r40["aos"]["Car"]["easy"] == pytest.approx(0.0, abs=1e-9)


def test_aos_skipped_when_alpha_is_minus_ten():
    dt = [objs([CAR + (0.0, 0, -10.0)], [0.9]) for _ in range(3)]
    res = evaluate_kitti([objs([CAR]) for _ in range(3)], dt, classes=("Car",), metrics=("bbox",))
    assert "aos" not in res.ap_r40


def test_table_lists_every_class_and_metric():
    res = evaluate_kitti([objs([CAR])] * N, [objs([CAR], [0.5])] * N, classes=("Car", "Pedestrian"))
    table = format_kitti_table(res)
    assert (
        sum(line.startswith("Car ") for line in table.splitlines()) == 4 and "Pedestrian" in table and "100.00" in table
    )


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ShapeError, match="2 ground-truth frames but 1"):
        evaluate_kitti([objs([CAR])] * 2, [objs([CAR], [1.0])])
    with pytest.raises(ShapeError, match="no score"):
        evaluate_kitti([objs([CAR])], [objs([CAR])])
    with pytest.raises(ConfigError, match="unknown KITTI metric"):
        evaluate_kitti([objs([CAR])], [objs([CAR], [1.0])], metrics=("iou",))
    with pytest.raises(ConfigError, match="no KITTI overlap"):
        evaluate_kitti([objs([CAR])], [objs([CAR], [1.0])], classes=("Bus",))


def test_real_labels_repeated_perfect(shared_data):
    labels = sorted((shared_data / "kitti/object/training/label_2").glob("*.txt"))
    gt = [read_label_file(p) for p in labels] * N
    dt = [KittiObjects(**{**g.__dict__, "score": np.ones(len(g))}) for g in gt]
    dt = [d[np.char.lower(d.type.astype(str)) != "dontcare"] for d in dt]
    res = evaluate_kitti(gt, dt)
    for m in ("bbox", "bev", "3d"):
        for cls, per_diff in res.num_gt.items():
            for d, n in per_diff.items():
                assert res.ap_r40[m][cls][d] == pytest.approx(100.0 if n else 0.0)


def test_frame_without_kitti_camera_evaluates_bev_and_3d():
    from perception.core import Boxes3D, Frame
    from perception.eval.kitti import boxes_to_kitti, frame_to_kitti_gt

    rows = np.array([[10.0 + 3 * i, 2.0, 0.0, 4.0, 1.8, 1.5, 0.3] for i in range(2)], np.float32)
    frame = Frame("synthetic", "", 0, 0.0, ("car",), boxes3d=Boxes3D(rows, [0, 0]))
    gt = frame_to_kitti_gt(frame)
    assert gt.type.tolist() == ["car", "car"] and (gt.bbox[:, 3] - gt.bbox[:, 1] == 100).all()
    dt = boxes_to_kitti(frame.boxes3d.replace(scores=np.array([0.9, 0.8], np.float32)), frame)
    res = evaluate_kitti([gt] * N, [dt] * N, classes=("Car",), metrics=("bev", "3d"))
    assert res.ap_r40["3d"]["Car"]["easy"] == pytest.approx(100.0)


def test_ground_truth_from_dataset_keeps_dontcare(shared_data):
    from perception.data.registry import load_dataset
    from perception.eval.kitti import frame_to_kitti_gt

    ds = load_dataset("datasets/kitti.yaml")
    i = next(i for i in range(len(ds)) if "DontCare" in ds.kitti_objects(i).type)
    frame = ds.load_frame(i, points=False, images=False)
    gt = frame_to_kitti_gt(frame, ds, i)
    assert "DontCare" in gt.type and len(gt) > len(frame.boxes3d)
