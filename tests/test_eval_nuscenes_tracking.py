"""nuScenes tracking AMOTA / AMOTP on hand-computed cases (devkit ``tracking_nips_2019`` rules)."""

from __future__ import annotations

import numpy as np
import pytest

from perception.core import Boxes3D
from perception.errors import CorruptFileError, DataError, UnknownClassError
from perception.eval.nuscenes_tracking import (
    evaluate_nuscenes_tracking,
    read_tracking_submission,
    score_thresholds,
    write_tracking_submission,
)

NAMES = ("car", "truck", "bus", "trailer", "pedestrian", "motorcycle", "bicycle")
CAR, PED = 0, 4


def frame(rows: list[tuple], scores: bool = True, num_points: list[int] | None = None) -> Boxes3D:
    """rows of (x, y, label, track_id[, score]) -> Boxes3D of 4 x 2 x 1.5 m boxes."""
    n = len(rows)
    boxes = np.array([[r[0], r[1], 0.0, 4.0, 2.0, 1.5, 0.0] for r in rows], np.float32).reshape(n, 7)
    attrs = {"num_points": np.array(num_points)} if num_points is not None else {}
    return Boxes3D(
        boxes,
        np.array([r[2] for r in rows], np.int64),
        scores=np.array([r[4] if len(r) > 4 else 1.0 for r in rows], np.float32) if scores else None,
        track_ids=np.array([r[3] for r in rows], np.int64),
        attributes=attrs,
    )


def single(gt: list[list[tuple]], pred: list[list[tuple]], **kw):
    return evaluate_nuscenes_tracking({"s": [frame(f) for f in gt]}, {"s": [frame(f) for f in pred]}, NAMES, **kw)


def test_perfect_tracker_amota_one_amotp_zero():
    gt = {
        f"scene{s}": [
            frame([(t * 1.0, 0.0, CAR, 1), (5.0, t * 0.5 + s, PED, 2), (20.0, -5.0, CAR, 3)]) for t in range(6)
        ]
        for s in range(2)
    }
    result = evaluate_nuscenes_tracking(gt, gt, NAMES)
    assert result.per_class["car"]["amota"] == 1.0 and result.per_class["car"]["amotp"] == 0.0
    assert result.per_class["pedestrian"]["amota"] == 1.0 and result.per_class["pedestrian"]["ids"] == 0
    assert np.isnan(result.per_class["truck"]["amota"])  # no ground truth: skipped in the mean
    assert result.amota == 1.0 and result.amotp == 0.0


def test_id_switch_counts_in_mota_but_recall_of_matches_caps_amota():
    # one object in 4 frames; the tracker changes id after frame 1: frames 2 is a switch, not a match
    gt = [[(0.0, 0.0, CAR, 7)] for _ in range(4)]
    pred = [[(0.0, 0.0, CAR, 1)], [(0.0, 0.0, CAR, 1)], [(0.0, 0.0, CAR, 2)], [(0.0, 0.0, CAR, 2)]]
    m = single(gt, pred).per_class["car"]
    # match scores reach recall 3/4: 29 of the 40 thresholds (0.1 + k 0.9/39 <= 0.75), MOTAR there
    # 1 - (0 + 1 + 0 - (1 - 3/4) 4) / 3 = 1; the other 11 count 0 (MOTAR) and 2 m (MOTP)
    assert m["amota"] == pytest.approx(29 / 40)
    assert m["amotp"] == pytest.approx(11 * 2.0 / 40)
    assert m["ids"] == 1 and m["mota"] == pytest.approx(0.75) and m["recall"] == 1.0


def test_false_positive_track_above_the_threshold_halves_motar():
    gt = [[(t, 0.0, CAR, 1)] for t in range(10)]
    pred = [[(t + 0.5, 0.0, CAR, 1, 0.9)] + ([(t, 30.0, CAR, 2, 0.95)] if t < 5 else []) for t in range(10)]
    m = single(gt, pred).per_class["car"]
    # every threshold is 0.9 (the only match score): 10 matches, 5 false positives, MOTAR 1 - 5/10
    assert m["amota"] == pytest.approx(0.5) and m["amotp"] == pytest.approx(0.5)
    assert m["fp"] == 5 and m["motp"] == pytest.approx(0.5)


def test_low_scored_false_positives_are_cut_by_the_thresholds():
    gt = [[(t, 0.0, CAR, 1)] for t in range(10)]
    pred = [[(t, 0.0, CAR, 1, 0.9), (t, 30.0, CAR, 2, 0.2)] for t in range(10)]
    assert single(gt, pred).per_class["car"]["amota"] == pytest.approx(1.0)


def test_two_metres_is_not_a_match():
    gt = [[(0.0, 0.0, CAR, 1)] for _ in range(3)]
    far = single(gt, [[(2.0, 0.0, CAR, 1)] for _ in range(3)]).per_class["car"]
    near = single(gt, [[(1.99, 0.0, CAR, 1)] for _ in range(3)]).per_class["car"]
    assert far["amota"] == 0.0 and far["amotp"] == 2.0
    assert near["amota"] == pytest.approx(1.0) and near["amotp"] == pytest.approx(1.99)


def test_previous_match_is_kept_over_a_closer_newcomer():
    # py-motmetrics keeps last frame's hypothesis while it is within 2 m: no switch, the newcomer is a FP
    gt = [[(0.0, 0.0, CAR, 1)], [(0.0, 0.0, CAR, 1)]]
    pred = [[(0.0, 0.0, CAR, 1)], [(1.5, 0.0, CAR, 1), (0.0, 0.0, CAR, 2)]]
    m = single(gt, pred).per_class["car"]
    assert m["ids"] == 0 and m["fp"] == 1 and m["motp"] == pytest.approx(0.75)


def test_range_and_point_filters_then_gaps_are_interpolated():
    far_car = (60.0, 0.0, CAR, 9)  # beyond the 50 m car range: dropped from both sides
    gt = [frame([(t, 0.0, CAR, 1), far_car], num_points=[0 if t == 2 else 5, 5]) for t in range(5)]
    pred = [frame([(t, 0.0, CAR, 1), far_car]) for t in range(5)]
    # the point-less box of frame 2 is filtered, then filled back by interpolation (devkit order)
    m = evaluate_nuscenes_tracking({"s": gt}, {"s": pred}, NAMES).per_class["car"]
    assert m["amota"] == pytest.approx(1.0) and m["gt"] == 5 and m["fp"] == 0


def test_interpolated_prediction_fills_a_missed_frame():
    gt = [[(t, 0.0, CAR, 1)] for t in range(3)]
    pred = [[(0.0, 0.0, CAR, 1)], [], [(2.0, 0.0, CAR, 1)]]
    assert single(gt, pred).per_class["car"]["amota"] == pytest.approx(1.0)


def test_score_thresholds_are_interpolated_at_forty_recalls():
    th = score_thresholds([0.9, 0.8, 0.7, 0.6], n_gt=8)  # recall 1/8 ... 4/8
    assert th.shape == (40,)
    assert np.isnan(th[np.linspace(0.1, 1, 40) > 0.5]).all()
    assert th[0] == pytest.approx(0.9)  # recall 0.1 lies left of the first point
    assert th[13] == pytest.approx(np.interp(0.1 + 13 * 0.9 / 39, [0.125, 0.25, 0.375, 0.5], [0.9, 0.8, 0.7, 0.6]))


def test_bad_inputs_are_clear_errors():
    gt = {"a": [frame([(0.0, 0.0, CAR, 1)])]}
    with pytest.raises(DataError, match="only one"):
        evaluate_nuscenes_tracking(gt, {"b": gt["a"]}, NAMES)
    with pytest.raises(DataError, match="frames"):
        evaluate_nuscenes_tracking(gt, {"a": gt["a"] * 2}, NAMES)
    with pytest.raises(UnknownClassError):
        evaluate_nuscenes_tracking(gt, gt, ("car",))


def test_submission_json_round_trip(tmp_path):
    tracks = {
        "tok0": frame([(1.0, 2.0, CAR, 5, 0.7), (3.0, 4.0, PED, 6, 0.4)]),
        "tok1": frame([(1.5, 2.0, CAR, 5, 0.6)]),
    }
    path = tmp_path / "tracks.json"
    write_tracking_submission(path, tracks, NAMES)
    meta, back = read_tracking_submission(path, NAMES)
    assert meta["use_lidar"] is True
    for token, boxes in tracks.items():
        assert np.allclose(back[token].xyz_lwh_yaw, boxes.xyz_lwh_yaw, atol=1e-6)
        assert (back[token].labels == boxes.labels).all() and np.allclose(back[token].scores, boxes.scores)
    assert back["tok0"].track_ids[0] == back["tok1"].track_ids[0] != back["tok0"].track_ids[1]


def test_submission_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CorruptFileError, match="bad.json"):
        read_tracking_submission(bad, NAMES)
    write_tracking_submission(tmp_path / "ok.json", {"t": frame([(0.0, 0.0, CAR, 1)])}, NAMES)
    with pytest.raises(UnknownClassError, match="ok.json"):
        read_tracking_submission(tmp_path / "ok.json", ("truck",))
    with pytest.raises(DataError):
        write_tracking_submission(tmp_path / "x.json", {"t": frame([(0.0, 0.0, CAR, 1)], scores=False)}, NAMES)
    assert not (tmp_path / "x.json").exists()
