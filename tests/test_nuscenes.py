"""nuScenes / Lyft loader.

The nuScenes v1.0 JSON tables are not in ../shared/data, so ``nusc_root`` writes them here, in
the documented schema, from mmdet3d's pickled info dict of the real keyframe (ego pose,
sensor poses, intrinsics, 69 boxes with velocities) next to the real LIDAR_TOP and camera
files. The 13 Lyft tables are real (without their data files).
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from perception.core import SE3, count_points_in_boxes, iou2d, project_boxes_to_rects, rotation_z
from perception.data.base import DatasetSpec
from perception.data.nuscenes import NuScenesDataset
from perception.data.registry import load_dataset
from perception.errors import CorruptFileError, DataError

ROOT = Path(__file__).resolve().parents[1]
CLASSES = (
    "car",
    "truck",
    "construction_vehicle",
    "bus",
    "trailer",
    "barrier",
    "motorcycle",
    "bicycle",
    "pedestrian",
    "traffic_cone",
)
# one real category per mmdet3d label, mapping back to the same detection class
CATEGORY = ("vehicle.car", "vehicle.truck", "vehicle.construction", "vehicle.bus.rigid", "vehicle.trailer",
            "movable_object.barrier", "vehicle.motorcycle", "vehicle.bicycle", "human.pedestrian.adult",
            "movable_object.trafficcone", "movable_object.pushable_pullable")  # fmt: skip
# (mmdet3d's label -1, a category outside the 10 classes, becomes the last entry: dropped by the loader)
DT_US = 500_000  # prev/next annotations written half a second either side


def quaternion(R: np.ndarray) -> list[float]:
    """Rotation matrix -> unit quaternion (w, x, y, z)."""
    w = np.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    x = np.copysign(np.sqrt(max(0.0, 1 + R[0, 0] - R[1, 1] - R[2, 2])) / 2, R[2, 1] - R[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] + R[1, 1] - R[2, 2])) / 2, R[0, 2] - R[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] - R[1, 1] + R[2, 2])) / 2, R[1, 0] - R[0, 1])
    return [float(v) for v in (w, x, y, z)]


def _pose_record(token: str, T: np.ndarray, **extra) -> dict:
    return {"token": token, "rotation": quaternion(T[:3, :3]), "translation": T[:3, 3].tolist(), **extra}


def _annotations(info: dict, T_global_from_lidar: np.ndarray, ts: int) -> tuple[list, list, list]:
    anns, instances, samples = [], [], []
    for k, inst in enumerate(info["instances"]):
        x, y, z, l, w, h, yaw = inst["bbox_3d"]
        T_box = T_global_from_lidar @ SE3.from_rt(rotation_z(yaw), [x, y, z]).matrix
        v_global = T_global_from_lidar[:3, :3] @ np.array([*inst["velocity"], 0.0])
        base = {"instance_token": f"inst{k}", "size": [w, l, h], "rotation": quaternion(T_box[:3, :3]),
                "num_lidar_pts": int(inst["num_lidar_pts"]), "visibility_token": "4", "attribute_tokens": ["attr0"]}  # fmt: skip
        for tag, step in (("prev", -1), ("", 0), ("next", 1)):
            centre = T_box[:3, 3] + v_global * step * DT_US * 1e-6
            links = {"prev": f"ann{k}prev", "next": f"ann{k}next"} if tag == "" else {"prev": "", "next": ""}
            anns.append(
                {**base, "token": f"ann{k}{tag}", "sample_token": f"s{tag}", "translation": centre.tolist(), **links}
            )
        instances.append({"token": f"inst{k}", "category_token": f"cat{inst['bbox_label_3d'] % len(CATEGORY)}"})
    for tag, step in (("prev", -1), ("", 0), ("next", 1)):
        samples.append(
            {"token": f"s{tag}", "timestamp": ts + step * DT_US, "scene_token": "scene0" if tag == "" else "scene1"}
        )
    return anns, instances, samples


def write_tables(shared: Path, root: Path) -> dict:
    """The nuScenes tables of the real keyframe, from mmdet3d's info dict; returns the info."""
    info = pickle.loads((shared / "nuscenes/mmdet3d_infos/n015-2018-07-24-11-22-45+0800.pkl").read_bytes())[
        "data_list"
    ][0]
    (root / "samples").symlink_to(shared / "nuscenes" / "samples")
    ts = round(info["timestamp"] * 1e6)
    ego2global = np.array(info["ego2global"])
    lidar2ego = np.array(info["lidar_points"]["lidar2ego"])
    t = {k: [] for k in ("sensor", "calibrated_sensor", "ego_pose", "sample_data")}
    lidar_file = f"samples/LIDAR_TOP/{info['lidar_points']['lidar_path']}"
    sensors = {"LIDAR_TOP": (lidar2ego, None, ego2global, lidar_file, ts, 0, 0)}
    for cam, c in info["images"].items():
        cam2ego, lidar2cam = np.array(c["cam2ego"]), np.array(c["lidar2cam"])
        # lidar2cam = inv(cam2ego) inv(egocam2global) ego2global lidar2ego: solve for the camera-time ego pose
        egocam2global = ego2global @ lidar2ego @ np.linalg.inv(lidar2cam) @ np.linalg.inv(cam2ego)
        sensors[cam] = (
            cam2ego,
            c["cam2img"],
            egocam2global,
            f"samples/{cam}/{c['img_path']}",
            round(c["timestamp"] * 1e6),
            1600,
            900,
        )
    for ch, (T_ego_from_s, K, T_global_from_ego, filename, stamp, w, h) in sensors.items():
        t["sensor"].append({"token": f"sensor_{ch}", "channel": ch, "modality": "lidar" if K is None else "camera"})
        t["calibrated_sensor"].append(
            _pose_record(f"cs_{ch}", T_ego_from_s, sensor_token=f"sensor_{ch}", camera_intrinsic=K or [])
        )
        t["ego_pose"].append(_pose_record(f"ep_{ch}", T_global_from_ego, timestamp=stamp))
        t["sample_data"].append({"token": f"sd_{ch}", "sample_token": "s", "ego_pose_token": f"ep_{ch}",
                                 "calibrated_sensor_token": f"cs_{ch}", "filename": filename, "fileformat": "",
                                 "timestamp": stamp, "is_key_frame": True, "width": w, "height": h, "prev": "", "next": ""})  # fmt: skip
    anns, instances, samples = _annotations(info, ego2global @ lidar2ego, ts)
    t.update(sample_annotation=anns, instance=instances, sample=samples)
    t["category"] = [{"token": f"cat{i}", "name": n} for i, n in enumerate(CATEGORY)]
    t["attribute"] = [{"token": "attr0", "name": "pedestrian.moving"}]
    t["scene"] = [{"token": "scene0", "name": "scene-0061"}, {"token": "scene1", "name": "scene-other"}]
    (root / "v1.0-mini").mkdir()
    for name, rows in t.items():
        (root / "v1.0-mini" / f"{name}.json").write_text(json.dumps(rows))
    return info


def _kept(info: dict) -> list[dict]:
    return [i for i in info["instances"] if i["bbox_label_3d"] >= 0]


def _spec(root: Path, **options) -> DatasetSpec:
    return DatasetSpec(format="nuscenes", root=root, classes=CLASSES, split="mini_train", options=options,
                       splits={"mini_train": {"version": "v1.0-mini", "scenes": ["scene-0061"]}})  # fmt: skip


@pytest.fixture(scope="module")
def nusc(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("nuscenes")
    info = write_tables(shared_data, root)
    return NuScenesDataset(_spec(root)), info, root


def test_split_selects_scene_keyframes(nusc):
    ds, _, _ = nusc
    assert len(ds) == 1 and ds.frame_key(0) == ("scene-0061", 0)


def test_camera_extrinsics_include_ego_motion(nusc):
    """T_cam_from_lidar from our Calibration equals mmdet3d's lidar2cam for all 6 cameras."""
    ds, info, _ = nusc
    calib = ds.load_frame(0, points=False, images=False).calibration
    for cam, c in info["images"].items():
        np.testing.assert_allclose(calib.T(cam, "lidar").matrix, c["lidar2cam"], atol=2e-5)
        np.testing.assert_allclose(calib.cameras[cam].K, c["cam2img"])


def test_points_in_ego_frame_fall_in_boxes(nusc):
    ds, info, _ = nusc
    f = ds.load_frame(0, images=False)
    assert f.points.channels == ("x", "y", "z", "intensity", "time_lag_s") and len(f.points) == 34688
    assert len(f.boxes3d) == len(_kept(info)) > 60
    counts = count_points_in_boxes(f.points.xyz, f.boxes3d.xyz_lwh_yaw)
    expected = f.boxes3d.attributes["num_points"]
    assert (counts == expected).mean() > 0.85
    assert np.abs(counts - expected).sum() < 0.05 * expected.sum()
    # lidar axes differ from the ego axes: our points must be the lidar points moved by lidar2ego
    raw = np.fromfile(ds.spec.root / "samples/LIDAR_TOP" / info["lidar_points"]["lidar_path"], np.float32).reshape(
        -1, 5
    )
    np.testing.assert_allclose(
        f.points.xyz, SE3(np.array(info["lidar_points"]["lidar2ego"])).apply(raw[:, :3]), atol=5e-4
    )


def test_boxes_project_onto_their_camera_labels(nusc):
    """Projected 3D ground truth lands on mmdet3d's 2D boxes for CAM_FRONT (from the same frame)."""
    ds, info, _ = nusc
    f = ds.load_frame(0, points=False)
    assert f.images["CAM_FRONT"].shape == (900, 1600, 3)
    rects, valid = project_boxes_to_rects(f.boxes3d.xyz_lwh_yaw, f.calibration, "CAM_FRONT")
    labels2d = np.array([c["bbox"] for c in info["cam_instances"]["CAM_FRONT"]])
    best = iou2d(labels2d, rects[valid]).max(axis=1)
    assert len(labels2d) > 40 and (best > 0.9).mean() > 0.9


def test_sizes_labels_and_velocities(nusc):
    ds, info, _ = nusc
    b = ds.load_frame(0, points=False, images=False).boxes3d
    kept = _kept(info)
    np.testing.assert_allclose(b.lwh, [i["bbox_3d"][3:6] for i in kept], atol=1e-6)  # (w, l, h) on disk -> (l, w, h)
    assert b.labels.tolist() == [i["bbox_label_3d"] for i in kept]
    R = np.array(info["lidar_points"]["lidar2ego"])[:2, :2]
    v_lidar = np.array([i["velocity"] for i in kept])
    np.testing.assert_allclose(b.velocity_xy, v_lidar @ R.T, atol=1e-3)
    assert (
        b.attributes["visibility"].tolist() == [4] * len(kept) and b.attributes["attribute"][0] == "pedestrian.moving"
    )


def test_sweeps_move_into_keyframe_ego_frame(nusc, tmp_path):
    """A previous sweep recorded 1 m further back (global x) lands 1 m behind, with its time lag."""
    _, _info, src = nusc
    shutil.copytree(src / "v1.0-mini", tmp_path / "v1.0-mini")
    (tmp_path / "samples").symlink_to((src / "samples").resolve())
    sd_path, ep_path = tmp_path / "v1.0-mini/sample_data.json", tmp_path / "v1.0-mini/ego_pose.json"
    sds, eps = json.loads(sd_path.read_text()), json.loads(ep_path.read_text())
    key = next(s for s in sds if s["token"] == "sd_LIDAR_TOP")
    ep = next(e for e in eps if e["token"] == "ep_LIDAR_TOP")
    eps.append({**ep, "token": "ep_sweep", "translation": (np.array(ep["translation"]) - [1.0, 0, 0]).tolist()})
    sds.append(
        {
            **key,
            "token": "sd_sweep",
            "is_key_frame": False,
            "ego_pose_token": "ep_sweep",
            "timestamp": key["timestamp"] - 50_000,
        }
    )
    key["prev"] = "sd_sweep"
    sd_path.write_text(json.dumps(sds))
    ep_path.write_text(json.dumps(eps))
    f = NuScenesDataset(_spec(tmp_path, sweeps=9)).load_frame(0, images=False)
    n = 34688
    assert len(f.points) == 2 * n
    np.testing.assert_allclose(f.points.channel("time_lag_s")[n:], 0.05, atol=1e-6)
    shift_ego = f.ego_pose.inverse().apply_vectors(np.array([[-1.0, 0, 0]]))[0]
    np.testing.assert_allclose(f.points.xyz[n:] - f.points.xyz[:n], np.tile(shift_ego, (n, 1)), atol=2e-3)


def test_missing_table_and_dangling_token(nusc, tmp_path):
    _, _, src = nusc
    shutil.copytree(src / "v1.0-mini", tmp_path / "v1.0-mini")
    (tmp_path / "v1.0-mini/instance.json").write_text("[]")
    ds = NuScenesDataset(_spec(tmp_path))
    with pytest.raises(
        DataError, match=r"instance.json: token 'inst0' not found \(referenced by sample_annotation ann0\)"
    ):
        ds.load_frame(0, points=False, images=False)
    (tmp_path / "v1.0-mini/scene.json").unlink()
    with pytest.raises(DataError, match="scene.json: table 'scene' not found"):
        NuScenesDataset(_spec(tmp_path))


def test_record_without_a_field(nusc, tmp_path):
    _, _, src = nusc
    shutil.copytree(src / "v1.0-mini", tmp_path / "v1.0-mini")
    anns = json.loads((tmp_path / "v1.0-mini/sample_annotation.json").read_text())
    del anns[3]["size"]
    (tmp_path / "v1.0-mini/sample_annotation.json").write_text(json.dumps(anns))
    with pytest.raises(
        CorruptFileError, match=r"sample_annotation.json: record 3 \('ann1prev'\) lacks field\(s\) \['size'\]"
    ):
        NuScenesDataset(_spec(tmp_path)).load_frame(0, points=False, images=False)


def test_truncated_lidar_file_and_check_lists_all(nusc, tmp_path):
    _, info, src = nusc
    shutil.copytree(src / "v1.0-mini", tmp_path / "v1.0-mini")
    lidar = tmp_path / "samples/LIDAR_TOP" / info["lidar_points"]["lidar_path"]
    lidar.parent.mkdir(parents=True)
    lidar.write_bytes(b"\0" * 22)
    with pytest.raises(CorruptFileError, match="pcd.bin: 22 bytes is not a multiple of 20"):
        NuScenesDataset(_spec(tmp_path)).load_frame(0, images=False)
    problems = NuScenesDataset(_spec(tmp_path)).check()
    text = "\n".join(map(str, problems))
    assert "22 bytes" in text and text.count("image not found") == 6


def test_real_lyft_tables(shared_data):
    ds = load_dataset(ROOT / "datasets" / "lyft.yaml")
    assert len(ds) == 1
    f = ds.load_frame(0, points=False, images=False)
    assert f.class_names[f.boxes3d.labels[0]] == "car" and len(f.boxes3d) == 4
    assert (f.boxes3d.lwh[:, 0] > f.boxes3d.lwh[:, 1]).all()  # cars are longer than wide after the (w, l, h) swap
    assert np.isnan(f.boxes3d.velocity_xy).all()  # prev/next annotations were trimmed from the excerpt
    assert f.calibration.cameras["CAM_FRONT"].width == 1920
    problems = ds.check()
    text = "\n".join(map(str, problems))
    assert len(problems) == 7 and "lidar file not found" in text and "host-a101_lidar1" in text
    assert text.count("image not found") == 6
