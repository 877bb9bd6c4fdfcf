"""The in-memory synthetic dataset: determinism, motion, lidar and camera consistency, ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.core import bev_iou, count_points_in_boxes, points_in_boxes, project_boxes_to_rects, wrap_angle
from perception.data.registry import load_dataset
from perception.data.synthetic import SyntheticDataset
from perception.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ds() -> SyntheticDataset:
    return SyntheticDataset.from_options(sequences=2, frames=12, seed=0, val_sequences=1)


@pytest.fixture(scope="module")
def frame(ds):
    return ds.load_frame(3)


def test_same_seed_same_frame_in_any_order(ds, frame):
    other = SyntheticDataset.from_options(sequences=2, frames=12, seed=0, val_sequences=1)
    other.load_frame(20)  # another sequence first: no hidden state may leak into frame 3
    again = other.load_frame(3)
    assert np.array_equal(again.points.data, frame.points.data)
    assert np.array_equal(again.images["image_2"], frame.images["image_2"])
    assert np.array_equal(again.boxes3d.xyz_lwh_yaw, frame.boxes3d.xyz_lwh_yaw)
    assert np.array_equal(again.boxes3d.track_ids, frame.boxes3d.track_ids)


def test_other_seed_other_data(frame):
    other = SyntheticDataset.from_options(sequences=2, frames=12, seed=1).load_frame(3)
    assert len(other.points) != len(frame.points) or not np.array_equal(other.points.data, frame.points.data)
    assert not np.array_equal(other.images["image_2"], frame.images["image_2"])


def test_skipping_points_and_images_keeps_the_ground_truth(ds, frame):
    bare = ds.load_frame(3, points=False, images=False)
    assert bare.points is None and not bare.images
    assert np.array_equal(bare.boxes3d.xyz_lwh_yaw, frame.boxes3d.xyz_lwh_yaw)
    assert np.array_equal(bare.boxes3d.attributes["num_points"], frame.boxes3d.attributes["num_points"])


def test_frame_contents_look_like_kitti(frame):
    pts = frame.points
    assert pts.channels == ("x", "y", "z", "intensity")
    assert 15_000 <= len(pts) <= 40_000
    intensity = pts.channel("intensity")
    assert intensity.min() >= 0 and intensity.max() <= 1 and intensity.std() > 0.05
    assert abs(np.percentile(pts.xyz[:, 2], 5) + 1.73) < 0.05  # ground ~1.73 m below the lidar
    assert np.linalg.norm(pts.xyz, axis=1).max() <= 100.5
    image = frame.images["image_2"]
    assert image.shape == (375, 1242, 3) and image.dtype == np.uint8
    assert frame.calibration.cameras["image_2"].width == 1242
    assert 6 <= len(frame.boxes3d) <= 40 and len(frame.boxes2d["image_2"]) >= 3
    assert frame.sequence == "0000" and frame.index == 3 and frame.timestamp_s == pytest.approx(0.3)


def test_boxes_in_field_realistic_and_apart(ds):
    boxes = [ds.load_frame(i, points=False, images=False).boxes3d for i in (0, 13)]
    for b in boxes:
        x, y = b.xyz[:, 0], b.xyz[:, 1]
        assert (x >= 0).all() and (x <= 70.4).all() and (np.abs(y) <= 40).all()
        iou = bev_iou(b.xyz_lwh_yaw, b.xyz_lwh_yaw)
        assert np.allclose(iou - np.diag(np.diag(iou)), 0.0)  # no two actors overlap
        assert np.allclose(b.xyz[:, 2] - b.lwh[:, 2] / 2, -1.73, atol=1e-4)  # standing on the ground
    b = type(boxes[0]).concatenate(boxes)
    for label, (l, w, h) in enumerate([(4.0, 1.7, 1.5), (0.8, 0.6, 1.75), (1.8, 0.6, 1.7)]):
        sizes = b.lwh[b.labels == label]
        if len(sizes):
            assert np.allclose(sizes.mean(axis=0), [l, w, h], rtol=0.15)


def test_track_ids_stable_and_motion_matches_velocity(ds):
    a, b = ds.load_frame(4, points=False, images=False), ds.load_frame(5, points=False, images=False)
    assert len(set(a.boxes3d.track_ids)) == len(a.boxes3d)  # unique within a frame
    common, ia, ib = np.intersect1d(a.boxes3d.track_ids, b.boxes3d.track_ids, return_indices=True)
    assert len(common) >= 0.7 * len(a.boxes3d)
    assert np.array_equal(a.boxes3d.labels[ia], b.boxes3d.labels[ib])
    assert np.allclose(a.boxes3d.lwh[ia], b.boxes3d.lwh[ib])
    wa = a.boxes3d.transformed(a.ego_pose)[ia]
    wb = b.boxes3d.transformed(b.ego_pose)[ib]
    step = wb.xyz[:, :2] - wa.xyz[:, :2]
    predicted = 0.5 * (wa.velocity_xy + wb.velocity_xy) * 0.1
    assert np.abs(step - predicted).max() < 0.05  # 5 cm in 0.1 s: smooth, and velocities are honest
    moving = np.linalg.norm(wa.velocity_xy, axis=1) > 0.5
    heading = np.stack([np.cos(wa.yaw), np.sin(wa.yaw)], axis=1)
    forward = (wa.velocity_xy * heading).sum(1) / np.maximum(np.linalg.norm(wa.velocity_xy, axis=1), 1e-9)
    assert (forward[moving] > 0.99).all()  # actors drive and walk forwards
    assert np.abs(wrap_angle(wb.yaw - wa.yaw)).max() < 0.05


def test_ego_drives_forward_along_the_road(ds):
    poses = [ds.load_frame(i, points=False, images=False).ego_pose for i in (0, 1, 11)]
    step = poses[0].inverse() @ poses[1]
    assert 0.45 < step.translation[0] < 1.15 and abs(step.translation[1]) < 0.02  # 4.5-11.5 m/s, straight ahead
    assert np.linalg.norm((poses[0].inverse() @ poses[2]).translation) == pytest.approx(
        11 * np.linalg.norm(step.translation), rel=0.01
    )


def test_num_points_are_the_points_inside_each_box(frame):
    counts = count_points_in_boxes(frame.points.xyz, frame.boxes3d.xyz_lwh_yaw)
    assert np.array_equal(frame.boxes3d.attributes["num_points"], counts)
    dist = np.linalg.norm(frame.boxes3d.xyz[:, :2], axis=1)
    cars = (frame.boxes3d.labels == 0) & (frame.boxes3d.attributes["occluded"] == 0)
    near, far = cars & (dist < 20), cars & (dist > 40)
    if near.any() and far.any():  # far objects get fewer points
        assert counts[near].min() > counts[far].max()


def test_2d_boxes_are_the_projected_3d_boxes(frame):
    b3, b2 = frame.boxes3d, frame.boxes2d["image_2"]
    rects, valid = project_boxes_to_rects(b3.xyz_lwh_yaw, frame.calibration, "image_2")
    assert np.allclose(b3.attributes["box2d"][valid], rects[valid], atol=1e-3)
    rows = {t: k for k, t in enumerate(b3.track_ids)}
    idx = np.array([rows[t] for t in b2.track_ids])
    assert np.allclose(b2.xyxy, rects[idx], atol=1e-3)
    assert np.array_equal(b2.labels, b3.labels[idx])
    assert (b2.attributes["visibility"] >= 0.1).all() and (b2.attributes["occluded"] <= 2).all()
    hidden = b3.attributes["occluded"] == 3
    assert not np.isin(b3.track_ids[hidden], b2.track_ids).any()
    assert (b3.attributes["truncated"][~valid] == 1.0).all()


def test_objects_are_drawn_inside_their_2d_boxes(ds, frame):
    scene = ds._scene(0, 3)
    background = ds._renderer(0).background(scene["s_ego"])
    image = frame.images["image_2"].astype(int)
    changed = np.abs(image - background.astype(int)).sum(axis=2) > 40
    b2 = frame.boxes2d["image_2"]
    clear = (b2.attributes["occluded"] == 0) & (b2.attributes["truncated"] == 0) & (b2.height > 20)
    assert clear.sum() >= 2
    for x1, y1, x2, y2 in b2.xyxy[clear].astype(int):
        assert changed[y1:y2, x1:x2].mean() > 0.3  # the actor's pixels fill its box


def test_kitti_objects_match_the_boxes(ds, frame):
    objs = ds.kitti_objects(3)
    assert len(objs) == len(frame.boxes3d)
    assert list(objs.type) == [frame.class_names[k] for k in frame.boxes3d.labels]
    assert np.allclose(objs.bbox, frame.boxes3d.attributes["box2d"])
    assert np.array_equal(objs.occluded, frame.boxes3d.attributes["occluded"])
    assert np.allclose(objs.alpha, frame.boxes3d.attributes["alpha"])


def test_splits_and_options(ds):
    train = SyntheticDataset.from_options("train", sequences=2, frames=12, val_sequences=1)
    val = SyntheticDataset.from_options("val", sequences=2, frames=12, val_sequences=1)
    assert len(train) == len(val) == 12 and len(ds) == 24
    assert set(train.sequences()) == {"0000"} and set(val.sequences()) == {"0001"}
    with pytest.raises(ConfigError, match="split"):
        SyntheticDataset.from_options("test", sequences=2, frames=2)
    with pytest.raises(ConfigError, match="frames"):
        SyntheticDataset.from_options(sequences=2, framez=2)


def test_class_map_drops_classes(ds):
    cars = SyntheticDataset.from_options(classes=("Car",), sequences=2, frames=12, val_sequences=1)
    full = ds.load_frame(3, points=False, images=False).boxes3d
    only = cars.load_frame(3, points=False, images=False).boxes3d
    assert (only.labels == 0).all() and len(only) == (full.labels == 0).sum()


def test_registry_yaml():
    ds = load_dataset(ROOT / "datasets" / "synthetic.yaml", split="val")
    assert isinstance(ds, SyntheticDataset)
    assert len(ds) == 2 * 100 and ds.frame_key(0) == ("0006", 0)


def test_min_height_drops_small_2d_boxes(frame):
    tall = SyntheticDataset.from_options(sequences=2, frames=12, seed=0, val_sequences=1, min_height_px=40)
    b2 = tall.load_frame(3, points=False, images=False).boxes2d["image_2"]
    all2 = frame.boxes2d["image_2"]
    assert (b2.height >= 40).all() and len(b2) == (all2.height >= 40).sum() < len(all2)


def test_pickles_without_its_caches(ds, frame):
    import pickle

    blob = pickle.dumps(ds)
    assert len(blob) < 2_000_000  # the camera background and noise texture (~5 MB) stay behind
    assert np.array_equal(pickle.loads(blob).load_frame(3).images["image_2"], frame.images["image_2"])


@pytest.mark.parametrize("bad", [{"frames": 0}, {"sequences": "many"}, {"rings": 2.5}, {"min_visibility": 1.5}])
def test_bad_option_values_are_config_errors(bad):
    key = next(iter(bad))
    with pytest.raises(ConfigError, match=f"options.{key}"):
        SyntheticDataset.from_options(**bad)


def test_actors_never_overlap_each_other_or_the_ego_during_a_drive(ds):
    scenario, _ = ds._sequence(1)
    for t in np.arange(0.0, 1.2, 0.3):
        boxes, _ = scenario.actor_state(t)
        ego = scenario.T_road_from_ego(t).translation
        near = boxes[np.hypot(*(boxes[:, :2] - ego[:2]).T) < 80]
        iou = bev_iou(near, near)
        assert np.allclose(iou - np.diag(np.diag(iou)), 0.0)
        ego_box = np.array([[ego[0], ego[1], 0.75, 4.5, 2.0, 1.5, scenario.road.heading(scenario.ego_s(t))]])
        assert np.allclose(bev_iou(ego_box, near), 0.0)


def test_lidar_points_on_actors_land_on_their_pixels(ds, frame):
    scene = ds._scene(0, 3)
    changed = np.abs(frame.images["image_2"].astype(int) - ds._renderer(0).background(scene["s_ego"])).sum(2) > 40
    b = frame.boxes3d
    clear = np.flatnonzero((b.attributes["occluded"] == 0) & (b.attributes["num_points"] > 20))
    assert len(clear) >= 2
    for k in clear:
        inside = points_in_boxes(frame.points.xyz, b.xyz_lwh_yaw[k : k + 1])[:, 0] & (frame.points.xyz[:, 2] > -1.5)
        uv, depth = frame.calibration.project(frame.points.xyz[inside], "image_2")
        u, v = np.clip(uv.astype(int), 0, [1241, 374]).T
        assert (depth > 0).all() and changed[v, u].mean() > 0.8  # camera and lidar see the same actor
