"""Tracking metrics: textbook cases by hand, the devkit's trajectory loop, the KITTI ignore rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.core import Boxes3D
from perception.data.kitti_format import KittiObjects, read_tracking_label_file
from perception.eval.tracking import (
    FrameData,
    _trajectory_stats,
    evaluate_frames,
    evaluate_kitti_tracking,
    evaluate_sequences,
    hota,
    recall_thresholds,
)
from perception.tracking.kitti_io import read_seqmap

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kitti" / "tracking"


def frames_one_object(track_ids: list[int], iou: float = 1.0) -> list[FrameData]:
    """One ground-truth object (id 0) seen in every frame; the tracker reports ``track_ids`` (-1: nothing)."""
    out = []
    for t in track_ids:
        ids = np.array([t] if t >= 0 else [], np.int64)
        out.append(
            FrameData(np.array([0]), np.array([False]), ids, np.zeros(len(ids), bool), np.full((1, len(ids)), iou))
        )
    return out


def score(n_tracks: int) -> np.ndarray:
    return np.ones(n_tracks)


def test_perfect_tracker_scores_one():
    # 50 frames so that every one of the 40 recall points exists
    frames = frames_one_object([0] * 50)
    m = evaluate_frames(frames, score(1), 0.25)
    assert m["MOTA"] == 1.0 and m["IDS"] == 0 and m["FRAG"] == 0 and m["FP"] == 0 and m["FN"] == 0
    assert m["HOTA"] == pytest.approx(1.0) and m["DetA"] == pytest.approx(1.0) and m["AssA"] == pytest.approx(1.0)
    assert m["sAMOTA"] == pytest.approx(1.0) and m["MT"] == 1.0 and m["ML"] == 0.0


def test_identity_switch_textbook():
    m = evaluate_frames(frames_one_object([0, 0, 1, 1]), score(2), 0.25)
    assert m["IDS"] == 1 and m["FN"] == 0 and m["FP"] == 0
    assert m["MOTA"] == pytest.approx(1 - 1 / 4)
    # HOTA: detection perfect; each of the two matched pairs has TPA 2, FNA 2 -> AssA 1/2
    assert m["DetA"] == pytest.approx(1.0) and m["AssA"] == pytest.approx(0.5)
    assert m["HOTA"] == pytest.approx(np.sqrt(0.5))


def test_fragmentation_textbook():
    m = evaluate_frames(frames_one_object([0, 0, -1, 0, 0]), score(1), 0.25)
    assert m["FRAG"] == 1 and m["IDS"] == 0 and m["FN"] == 1
    assert m["MOTA"] == pytest.approx(1 - 1 / 5)


def test_false_positive_textbook():
    frames = frames_one_object([0, 0, 0, 0])
    frames[2] = FrameData(np.array([0]), np.array([False]), np.array([0, 1]), np.zeros(2, bool), np.array([[1.0, 0.0]]))
    m = evaluate_frames(frames, score(2), 0.25)
    assert m["FP"] == 1 and m["IDS"] == 0 and m["MOTA"] == pytest.approx(1 - 1 / 4)
    assert m["DetA"] == pytest.approx(4 / 5)


def test_overlap_below_threshold_is_a_miss_and_a_false_positive():
    m = evaluate_frames(frames_one_object([0, 0], iou=0.3), score(1), 0.5)
    assert m["TP"] == 0 and m["FN"] == 2 and m["FP"] == 2


def test_motp_is_mean_iou_of_matches():
    frames = frames_one_object([0, 0], iou=0.6) + frames_one_object([0, 0], iou=0.8)
    assert evaluate_frames(frames, score(1), 0.5)["MOTP"] == pytest.approx(0.7)


def test_recall_thresholds_pick_scores_at_recall_steps():
    # 80 true positives scored 80..1 among 80 gt: recall k/40 needs 2k of them, so threshold 81 - 2k
    thr, rec = recall_thresholds(np.arange(80, 0, -1.0), 80)
    assert len(thr) == 40
    assert np.allclose(rec, np.arange(1, 41) / 40)
    assert thr == [81.0 - 2 * k for k in range(1, 41)]


def devkit_trajectory_loop(trajectories):
    """The KITTI devkit's loop, written out literally, as the reference for the vectorised version."""
    ids = frag = 0
    for g, ign in trajectories:
        if all(ign) or all(x == -1 for x in g):
            continue
        last_id, f = g[0], 0
        for f in range(1, len(g)):
            if ign[f]:
                last_id = -1
                continue
            if last_id != g[f] and last_id != -1 and g[f] != -1 and g[f - 1] != -1:
                ids += 1
            if f < len(g) - 1 and g[f - 1] != g[f] and last_id != -1 and g[f] != -1 and g[f + 1] != -1:
                frag += 1
            if g[f] != -1:
                last_id = g[f]
        if len(g) > 1 and g[f - 1] != g[f] and last_id != -1 and g[f] != -1 and not ign[f]:
            frag += 1
    return ids, frag


@pytest.mark.parametrize("seed", range(20))
def test_vectorised_trajectory_stats_match_the_devkit_loop(seed):
    rng = np.random.default_rng(seed)
    trajectories = []
    for _ in range(8):
        n = int(rng.integers(1, 12))
        trajectories.append((rng.integers(-1, 3, n).tolist(), (rng.random(n) < 0.2).tolist()))
    gid = np.concatenate([np.full(len(g), i) for i, (g, _) in enumerate(trajectories)])
    ign = np.concatenate([np.array(i, bool) for _, i in trajectories])
    g = np.concatenate([np.array(g, np.int64) for g, _ in trajectories])
    order = rng.permutation(len(g))  # frames of different objects interleave; order within one object is kept
    order = np.concatenate([np.sort(order[gid[order] == i]) for i in range(len(trajectories))])
    stats = _trajectory_stats(gid[order], ign[order], g[order])
    assert (stats["IDS"], stats["FRAG"]) == devkit_trajectory_loop(trajectories)


def test_hota_all_wrong_associations_is_lower_than_right_ones():
    good = hota(frames_one_object([0, 0, 0, 0]))
    bad = hota(frames_one_object([0, 1, 2, 3]))
    assert good["HOTA"] == pytest.approx(1.0)
    assert bad["DetA"] == pytest.approx(1.0) and bad["AssA"] == pytest.approx(0.25)


def kitti_rows(rows: list[tuple]) -> KittiObjects:
    """(frame, id, type, occluded, bbox, location, score) -> tracking rows with a 4 x 1.6 x 1.5 box."""
    n = len(rows)
    return KittiObjects(
        type=np.array([r[2] for r in rows], "<U16"), truncated=np.zeros(n), occluded=np.array([r[3] for r in rows], np.int64),
        alpha=np.zeros(n), bbox=np.array([r[4] for r in rows], float).reshape(n, 4),
        dimensions_hwl=np.tile([1.5, 1.6, 4.0], (n, 1)), location=np.array([r[5] for r in rows], float).reshape(n, 3),
        rotation_y=np.zeros(n), score=np.array([r[6] for r in rows], float), track_id=np.array([r[1] for r in rows], np.int64),
        frame=np.array([r[0] for r in rows], np.int64),
    )  # fmt: skip


BIG = (100.0, 100.0, 200.0, 200.0)


def test_kitti_ignore_rules():
    gt = kitti_rows([
        (0, 0, "Car", 0, BIG, (0, 1, 10), 0), (0, 1, "Van", 0, BIG, (5, 1, 10), 0), (0, 2, "Car", 3, BIG, (-5, 1, 10), 0),
        (0, -1, "DontCare", -1, (300, 100, 400, 200), (-1000, -1000, -1000), 0),
    ])  # fmt: skip
    trk = kitti_rows([
        (0, 7, "Car", 0, BIG, (0, 1, 10), 1.0),  # true positive
        (0, 8, "Car", 0, (310, 110, 390, 190), (0, 1, 40), 1.0),  # inside the DontCare box: ignored
        (0, 9, "Car", 0, (100, 100, 200, 120), (0, 1, 60), 1.0),  # 20 px tall: ignored
        (0, 10, "Car", 0, BIG, (0, 1, 80), 1.0),  # a real false positive
    ])  # fmt: skip
    m = evaluate_kitti_tracking({"s": gt}, {"s": trk}, {"s": 1}, classes=("car",))["car"]
    # the unmatched Van and the occlusion-3 Car are neither misses nor hits
    assert (m["TP"], m["FP"], m["FN"]) == (1, 1, 0)
    assert m["MOTA"] == pytest.approx(0.0)


def test_evaluate_sequences_generic_boxes():
    box = np.array([[10.0, 0, 0, 4, 2, 1.5, 0]], np.float32)
    gt = [Boxes3D(box, [0], track_ids=[5]) for _ in range(3)]
    pred = [Boxes3D(box + [[0.2, 0, 0, 0, 0, 0, 0]], [0], scores=[0.9], track_ids=[t]) for t in (1, 1, 2)]
    m = evaluate_sequences({"a": gt}, {"a": pred}, ("Car",), threshold=0.5)["Car"]
    assert m["IDS"] == 1 and m["TP"] == 3 and m["MOTA"] == pytest.approx(2 / 3)


def test_real_kitti_ground_truth_as_tracker_is_perfect():
    if not SHARED.exists():
        pytest.skip("../shared/data (real KITTI tracking labels) is absent")
    seqs = {
        s: last - first + 1
        for s, first, last in read_seqmap(SHARED / "evaluate_tracking.seqmap.val")
        if s in ("0012", "0014")
    }
    gt = {s: read_tracking_label_file(SHARED / "training" / "label_02" / f"{s}.txt") for s in seqs}
    res = {}
    for s, objs in gt.items():
        keep = np.flatnonzero(objs.type != "DontCare")
        sub = objs[keep]
        res[s] = KittiObjects(**{**{f: getattr(sub, f) for f in sub.__dataclass_fields__}, "score": np.ones(len(sub))})
    m = evaluate_kitti_tracking(gt, res, seqs, classes=("car", "pedestrian"))
    for cls in ("car", "pedestrian"):
        assert m[cls]["MOTA"] == pytest.approx(1.0) and m[cls]["IDS"] == 0 and m[cls]["FP"] == 0 and m[cls]["FN"] == 0
        assert m[cls]["HOTA"] == pytest.approx(1.0)
