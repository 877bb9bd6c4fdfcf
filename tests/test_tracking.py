"""3D and 2D trackers: identities, motion, ego compensation, heading flips, birth/death, matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.core import SE3, Boxes2D, Boxes3D, rotation_z
from perception.errors import ConfigError
from perception.tracking import Tracker2D, Tracker3D, build_tracker
from perception.tracking.association import _hull_area, giou3d, mahalanobis, match, similarity_3d


def car(x: float, y: float, yaw: float = 0.0) -> list[float]:
    return [x, y, 0.0, 4.0, 1.8, 1.5, yaw]


def frame(rows: list[list[float]], labels=None, scores=None) -> Boxes3D:
    n = len(rows)
    return Boxes3D(
        np.array(rows, np.float32).reshape(n, 7), labels if labels is not None else [0] * n, scores=scores or [0.9] * n
    )


def test_two_cars_keep_their_ids_and_velocities():
    rng = np.random.default_rng(0)
    t = Tracker3D({"min_hits": 1})
    for f in range(20):
        noise = rng.normal(0, 0.05, 2)
        out = t.update(frame([car(1.0 * f + noise[0], 0), car(30 - 0.5 * f, 4 + noise[1])]), timestamp_s=0.1 * f)
    assert sorted(out.track_ids.tolist()) == [1, 2]
    vel = out.velocity_xy[np.argsort(out.track_ids)]
    assert np.allclose(vel, [[10.0, 0.0], [-5.0, 0.0]], atol=1.0)  # m/s at 10 Hz


def test_ego_motion_compensation_sees_a_parked_car_as_static():
    with_pose, without = Tracker3D({"min_hits": 1}), Tracker3D({"min_hits": 1})
    for f in range(15):
        ego = SE3.from_rt(rotation_z(0.02 * f), [1.5 * f, 0.0, 0.0])  # the vehicle drives and turns
        parked_world = np.array([[20.0, 3.0, 0.0]])
        in_ego = ego.inverse().apply(parked_world)[0]
        boxes = frame([car(in_ego[0], in_ego[1], -0.02 * f)])
        a = with_pose.update(boxes, ego_pose=ego, timestamp_s=0.1 * f)
        b = without.update(boxes, timestamp_s=0.1 * f)
    assert np.linalg.norm(a.velocity_xy[0]) < 0.5  # world-static
    assert np.linalg.norm(b.velocity_xy[0]) > 10.0  # seen from the moving vehicle
    assert np.allclose(a.xyz[0, :2], boxes.xyz[0, :2], atol=0.3)  # reported back in the ego frame


def test_heading_flips_by_pi_keep_the_track_and_its_heading():
    t = Tracker3D({"min_hits": 1})
    for f in range(10):
        out = t.update(frame([car(f * 0.5, 0, np.pi if f % 2 else 0.0)]))
    assert out.track_ids.tolist() == [1]
    assert abs(np.sin(out.yaw[0])) < 0.05


def test_min_hits_hides_new_tracks_and_max_age_kills_lost_ones():
    t = Tracker3D({"min_hits": 3, "max_age": 2})
    reported = [len(t.update(frame([car(0, 0)]))) for _ in range(3)]  # the first min_hits frames report all
    assert reported == [1, 1, 1]
    late = [len(t.update(frame([car(0, 0), car(50, 0)]))) for _ in range(3)]
    assert late == [1, 1, 2]  # the car at 50 m appears from its third hit on
    for _ in range(3):  # gone for more than max_age frames
        t.update(frame([car(50, 0)]))
    out = [t.update(frame([car(0, 0), car(50, 0)])) for _ in range(3)][-1]
    assert 1 not in out.track_ids.tolist() and len(out) == 2  # the returning car has a new id


def test_per_class_parameters_and_labels_never_mix():
    t = Tracker3D({"min_hits": 1, "max_age": 0}, per_class={1: {"max_coast": 3, "max_age": 3}})
    t.update(frame([car(0, 0), car(0, 0)], labels=[0, 1]))
    out = t.update(frame([]))
    assert out.labels.tolist() == [1]  # only class 1 coasts through a missed frame
    out = t.update(frame([car(0, 0)], labels=[0]))
    assert set(out.track_ids.tolist()) == {3, 2}  # class 0 re-born (id 3), class 1 still coasting (id 2)


def test_empty_frames_and_reset():
    t = build_tracker("3d", min_hits=1)
    out = t.update(Boxes3D.empty())
    assert len(out) == 0 and out.track_ids is not None
    t.update(frame([car(0, 0)]))
    t.reset()
    assert t.update(frame([car(0, 0)])).track_ids.tolist() == [1]


def test_carried_attributes_follow_the_track():
    t = Tracker3D({"min_hits": 1})
    b = Boxes3D(np.array([car(0, 0)], np.float32), [0], scores=[0.5], attributes={"box2d": np.array([[1.0, 2, 3, 4]])})
    out = t.update(b)
    assert np.array_equal(out.attributes["box2d"], [[1.0, 2, 3, 4]])


@pytest.mark.parametrize("kind", ["giou_3d", "iou_3d", "iou_bev", "dist_3d", "dist_bev", "mahalanobis"])
def test_every_similarity_tracks(kind):
    thr = {"dist_3d": -2.0, "dist_bev": -2.0, "mahalanobis": -5.0}.get(kind, 0.1)
    t = Tracker3D({"min_hits": 1, "similarity": kind, "threshold": thr})
    for f in range(6):
        out = t.update(frame([car(0.3 * f, 0), car(10, 0.2 * f)]))
    assert sorted(out.track_ids.tolist()) == [1, 2]


def test_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="max_agee"):
        Tracker3D({"max_agee": 3})
    with pytest.raises(ConfigError, match="similarity"):
        Tracker3D({"similarity": "iou4d"})
    with pytest.raises(ConfigError, match="matcher"):
        Tracker3D({"matcher": "auction"})
    with pytest.raises(ConfigError, match="tracker"):
        build_tracker("4d")


def test_giou_hand_computed():
    a = np.array([car(0, 0)])
    b = np.array([car(3, 0)])  # 1 m overlap along x: inter 1*1.8*1.5, union 2*V - inter, hull 7*1.8*1.5
    inter, vol, hull = 1 * 1.8 * 1.5, 4 * 1.8 * 1.5, 7 * 1.8 * 1.5
    union = 2 * vol - inter
    assert giou3d(a, b)[0, 0] == pytest.approx(inter / union - (hull - union) / hull)
    assert giou3d(a, a)[0, 0] == pytest.approx(1.0)
    far = giou3d(a, np.array([car(100, 0)]))[0, 0]
    assert -1.0 < far < -0.9


def test_hull_area_with_duplicate_and_collinear_points():
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    pts = np.concatenate([square, square, [[0.5, 0.0], [0.5, 0.5]]]).T[:, :, None]  # duplicates, on an edge, inside
    assert _hull_area(pts)[0] == pytest.approx(1.0)
    rect_and_far = np.concatenate([square, square + [3, 0]]).T[:, :, None]
    assert _hull_area(rect_and_far)[0] == pytest.approx(4.0)


def test_hungarian_beats_greedy_on_the_classic_case():
    sim = np.array([[0.9, 0.8], [0.85, 0.1]])
    r, c = match(sim, 0.5, "hungarian")
    assert sorted(zip(r.tolist(), c.tolist())) == [(0, 1), (1, 0)]
    r, c = match(sim, 0.5, "greedy")
    assert list(zip(r.tolist(), c.tolist())) == [(0, 0)]
    r, c = match(sim, 0.95, "hungarian")
    assert len(r) == 0


def test_gate_skips_far_pairs():
    sim = similarity_3d("giou_3d", np.array([car(0, 0)], float), np.array([car(1, 0), car(40, 0)], float), gate_m=5.0)
    assert np.isfinite(sim[0, 0]) and sim[0, 1] == -np.inf


def test_mahalanobis_is_euclidean_for_identity_covariance():
    d = mahalanobis(np.zeros((1, 3)), np.eye(3)[None], np.array([[3.0, 4.0, 0.0]]))
    assert d[0, 0] == pytest.approx(5.0)


def flickering_scene(seed: int, frames: int = 60):
    """Six pedestrian-sized image boxes walking across each other; detections jitter, drop out and lose confidence."""
    rng = np.random.default_rng(seed)
    n = 6
    starts = np.column_stack(
        [np.where(np.arange(n) % 2, 600.0, 0.0) + np.arange(n) * 60.0, 200 + rng.uniform(-15, 15, n)]
    )
    vel = np.column_stack([np.where(np.arange(n) % 2, -1.0, 1.0) * rng.uniform(8, 12, n), rng.normal(0, 0.5, n)])
    gt, det = [], []
    for f in range(frames):
        c = starts + vel * f
        boxes = np.concatenate([c - [20, 40], c + [20, 40]], axis=1)
        gt.append(Boxes2D(boxes, np.zeros(n), track_ids=np.arange(n)))
        keep = rng.random(n) > 0.15  # flicker
        scores = np.where(rng.random(n) < 0.3, 0.3, 0.9)  # some weak detections
        noisy = boxes + rng.normal(0, 3.0, boxes.shape)
        det.append(Boxes2D(noisy[keep], np.zeros(int(keep.sum())), scores=scores[keep]))
    return gt, det


def nearest_matching(dets: list[Boxes2D], max_px: float = 60.0) -> list[Boxes2D]:
    """Baseline: each detection takes the id of the nearest detection of the previous frame."""
    out, prev_c, prev_ids, next_id = [], np.zeros((0, 2)), np.zeros(0, np.int64), 0
    for d in dets:
        c = (d.xyxy[:, :2] + d.xyxy[:, 2:]) / 2
        ids = np.empty(len(d), np.int64)
        for i, ci in enumerate(c):
            dist = np.linalg.norm(prev_c - ci, axis=1) if len(prev_c) else np.array([])
            if len(dist) and dist.min() < max_px:
                ids[i] = prev_ids[dist.argmin()]
            else:
                ids[i], next_id = next_id, next_id + 1
        out.append(d.replace(track_ids=ids))
        prev_c, prev_ids = c, ids
    return out


def test_bytetrack_has_fewer_id_switches_than_nearest_matching():
    from perception.eval.tracking import evaluate_sequences

    ours_ids = base_ids = 0
    for seed in range(3):
        gt, det = flickering_scene(seed)
        t = Tracker2D({"min_hits": 1, "max_age": 10})
        ours = [t.update(d) for d in det]
        base = nearest_matching(det)
        ours_ids += evaluate_sequences({"s": gt}, {"s": ours}, ("ped",), 0.3, "iou_2d")["ped"]["IDS"]
        base_ids += evaluate_sequences({"s": gt}, {"s": base}, ("ped",), 0.3, "iou_2d")["ped"]["IDS"]
    assert ours_ids < base_ids


def test_bytetrack_second_stage_keeps_weak_detections_on_their_tracks():
    t = Tracker2D({"min_hits": 1})
    strong = Boxes2D(np.array([[0.0, 0, 50, 100]]), [0], scores=[0.9])
    weak = Boxes2D(np.array([[2.0, 0, 52, 100]]), [0], scores=[0.3])
    t.update(strong)
    out = t.update(weak)
    assert out.track_ids.tolist() == [1]
    t2 = Tracker2D({"min_hits": 1})
    out = t2.update(weak)  # a weak detection never starts a track
    assert len(out) == 0


def test_track_and_evaluate_on_synthetic_sequences():
    import dataclasses

    from perception.data.base import DatasetSpec
    from perception.data.registry import LOADERS
    from perception.tracking.run import track_and_evaluate

    spec = DatasetSpec.from_yaml(Path(__file__).resolve().parents[1] / "datasets" / "synthetic.yaml")
    spec = dataclasses.replace(
        spec, options={**spec.options, "sequences": 1, "frames": 15, "rings": 4, "azimuth_steps": 64}
    )
    dataset = LOADERS["synthetic"](spec)
    rng = np.random.default_rng(0)

    def detect(frame):  # ground truth, jittered, without ids, 10 % missed
        b = frame.boxes3d[np.flatnonzero(rng.random(len(frame.boxes3d)) > 0.1)]
        jitter = rng.normal(0, 0.05, b.xyz_lwh_yaw.shape).astype(np.float32)
        return b.replace(xyz_lwh_yaw=b.xyz_lwh_yaw + jitter, scores=np.full(len(b), 0.9, np.float32), track_ids=None)

    metrics = track_and_evaluate(dataset, detect, points=False)
    assert metrics["Car"]["IDS"] == 0 and metrics["Car"]["MOTA"] > 0.7


def test_hull_area_matches_scipy_on_rectangle_pairs_including_identical_and_aligned():
    from scipy.spatial import ConvexHull

    from perception.core import bev_corners

    rng = np.random.default_rng(1)
    k = 200
    a = np.column_stack(
        [
            rng.uniform(-30, 30, (k, 2)),
            np.zeros(k),
            rng.uniform(0.3, 6, k),
            rng.uniform(0.3, 3, k),
            np.ones(k),
            rng.uniform(-3, 3, k),
        ]
    )
    b = a.copy()
    moved = rng.random(k) < 0.6  # the rest are identical pairs
    b[moved, :2] += rng.normal(0, 2, (int(moved.sum()), 2))
    b[moved, 6] += rng.choice([0.0, np.pi / 2, np.pi, 0.3], int(moved.sum()))  # aligned edges are common
    pts = np.concatenate([bev_corners(a), bev_corners(b)], axis=1)
    ref = np.array([ConvexHull(p).volume for p in pts])
    assert np.allclose(_hull_area(pts.transpose(2, 1, 0)), ref, atol=1e-5)


def test_clipped_quad_area_equals_sorted_polygon_area_including_shared_and_touching_edges():
    from perception.core import bev_corners
    from perception.core.iou import clipped_quad_intersection_area, paired_bev_corners, quad_intersection_area
    from perception.tracking.association import pair_fields

    rng = np.random.default_rng(3)
    a = np.c_[rng.normal(0, 2, (400, 3)), rng.uniform(0.5, 5, (400, 3)), rng.uniform(-4, 4, 400)]
    b = np.c_[rng.normal(0, 2, (400, 3)), rng.uniform(0.5, 5, (400, 3)), rng.uniform(-4, 4, 400)]
    b[:50] = a[:50]  # identical: every side shared with the same direction
    b[50:100] = a[50:100]
    b[50:100, 6] += np.pi / 2 * rng.integers(0, 4, 50)  # same centre, quarter turns
    heading = np.c_[np.cos(a[:, 6]), np.sin(a[:, 6])]
    b[100:150] = a[100:150]
    b[100:150, :2] += a[100:150, 3:4] * heading[100:150]  # touching front to back: area 0
    b[150:200] = a[150:200]
    b[150:200, :2] += 0.3 * heading[150:200]  # sliding along the long sides
    quads = paired_bev_corners(pair_fields(a, b))  # relative to a's centres: the same areas
    assert np.allclose(quads.transpose(1, 3, 2, 0) + a[:, None, :2], [bev_corners(a), bev_corners(b)])
    got = clipped_quad_intersection_area(quads)
    assert np.allclose(got, quad_intersection_area(bev_corners(a), bev_corners(b)), atol=1e-9)
    assert np.allclose(clipped_quad_intersection_area(quads[..., 200:]), got[200:])  # no parallel edge at all
    assert np.allclose(got[:50], a[:50, 3] * a[:50, 4])
    assert np.allclose(got[100:150], 0.0, atol=1e-9)
    assert np.allclose(got[150:200], (a[150:200, 3] - 0.3) * a[150:200, 4])
    assert clipped_quad_intersection_area(np.zeros((2, 2, 4, 0))).shape == (0,)


def test_kalman_predict_equals_transition_matrix_products():
    from perception.tracking.kalman import BatchKalman

    rng = np.random.default_rng(0)
    kf = BatchKalman((1.0,) * 7, tuple(rng.uniform(0.1, 1, 10)), (10.0,) * 7 + (1e4,) * 3, n_rates=3)
    kf.add(rng.normal(size=(5, 7)))
    kf.x[:, 7:] = rng.normal(size=(5, 3))
    L = rng.normal(size=(5, 10, 10))
    kf.P = L @ L.transpose(0, 2, 1)
    F = kf.transition(0.7)
    x_ref, P_ref = kf.x @ F.T, F @ kf.P @ F.T + np.diag(kf.q * 0.7)
    kf.predict(0.7)
    assert np.allclose(kf.x, x_ref) and np.allclose(kf.P, P_ref)
    assert kf.transition(1.0)[0, 7] == 1.0 and kf.transition(0.7)[0, 7] == 0.7  # a new step size, a new F


@pytest.mark.parametrize("coupled", [False, True])
def test_kalman_update_equals_textbook_gain(coupled):
    """Diagonal S (what the filter's own steps produce) takes reciprocals, any other S the full inverse."""
    from perception.tracking.kalman import BatchKalman

    rng = np.random.default_rng(1)
    kf = BatchKalman(tuple(rng.uniform(0.1, 1, 7)), tuple(rng.uniform(0.1, 1, 10)), (10.0,) * 7 + (1e4,) * 3, 3)
    kf.add(rng.normal(size=(6, 7)))
    kf.predict(1.0)
    kf.update(np.array([1, 3]), rng.normal(size=(2, 7)))
    kf.predict(0.5)
    if coupled:
        L = rng.normal(size=(6, 10, 10))
        kf.P = L @ L.transpose(0, 2, 1)
    idx, z = np.array([0, 1, 4]), rng.normal(size=(3, 7))
    P, x = kf.P[idx], kf.x[idx]
    S = P[:, :7, :7] + kf.R
    assert np.count_nonzero(S - S * np.eye(7)) == (S.size - 21 if coupled else 0)
    K = P[:, :, :7] @ np.linalg.inv(S)
    x_ref = x + (K @ (z - x[:, :7])[:, :, None])[:, :, 0]
    P_ref = P - K @ P[:, :7, :]
    kf.update(idx, z)
    assert np.allclose(kf.x[idx], x_ref) and np.allclose(kf.P[idx], P_ref)


def test_hungarian_equals_scipy_with_and_without_competing_pairs():
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(2)
    for trial in range(200):
        n, m = rng.integers(1, 7, 2)
        sim = np.where(rng.random((n, m)) < 0.3, rng.uniform(-1, 1, (n, m)), -np.inf)
        if trial % 2:  # at most one valid pair per row and per column
            keep = np.zeros((n, m), bool)
            rows, cols = rng.permutation(n)[: min(n, m)], rng.permutation(m)[: min(n, m)]
            keep[rows, cols] = True
            sim = np.where(keep, sim, -np.inf)
        ok = sim >= 0.0
        r, c = linear_sum_assignment(np.where(ok, sim, -1e6), maximize=True)
        expected = sorted((i, j) for i, j in zip(r.tolist(), c.tolist()) if ok[i, j])
        got_r, got_c = match(sim, 0.0, "hungarian")
        assert sorted(zip(got_r.tolist(), got_c.tolist())) == expected
        assert got_r.dtype == got_c.dtype == np.int64
