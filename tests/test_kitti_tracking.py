"""KITTI tracking loader: the 21 real label files, both calib spellings, seqmap splits, oxts poses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from perception.data.kitti_format import read_calib_file, read_tracking_label_file, write_label_file
from perception.data.kitti_tracking import KittiTrackingDataset, oxts_to_poses, read_seqmap
from perception.data.registry import load_dataset
from perception.errors import ConfigError, CorruptFileError, DataError

ROOT = Path(__file__).resolve().parents[1]
TRACKING_YAML = ROOT / "datasets" / "kitti_tracking.yaml"


@pytest.fixture(scope="module")
def tracking(shared_data: Path) -> KittiTrackingDataset:
    return load_dataset(TRACKING_YAML)


def _raw_rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def test_real_label_files_rows_and_tracks(shared_data: Path) -> None:
    files = sorted((shared_data / "kitti/tracking/training/label_02").glob("*.txt"))
    assert len(files) == 21
    for path in files:
        rows = _raw_rows(path)
        objs = read_tracking_label_file(path)
        assert len(objs) == len(rows)
        assert len(set(objs.track_id[objs.track_id >= 0])) == len({r[1] for r in rows if r[1] != "-1"})
        assert objs.frame.max() == max(int(r[0]) for r in rows)


def test_real_sequence_0001_counts(tracking: KittiTrackingDataset) -> None:
    seqs = tracking.sequences()
    # without sweeps the label file sets the range: its last labelled frame is 446 (the seqmap says 447)
    assert len(seqs) == 21 and len(seqs["0001"]) == 447
    i = tracking.keys.index(("0001", 10))
    frame = tracking.load_frame(i)
    objs = tracking.kitti_objects(i)
    assert (objs.frame == 10).all() and len(objs) > len(frame.boxes3d) > 0
    kept = [t in ("Car", "Pedestrian", "Cyclist") for t in objs.type]
    np.testing.assert_array_equal(frame.boxes3d.track_ids, objs.track_id[kept])
    np.testing.assert_array_equal(frame.boxes2d["image_2"].track_ids, objs.track_id[kept])
    assert frame.points is None  # the excerpt has no sweeps
    assert frame.images["image_2"].shape == (375, 1242, 3)
    assert frame.timestamp_s == pytest.approx(1.0) and frame.ego_pose is None


def test_real_label_round_trip_exact(shared_data: Path, tmp_path: Path) -> None:
    for name in ("0000.txt", "0019.txt"):
        path = shared_data / "kitti/tracking/training/label_02" / name
        write_label_file(tmp_path / name, read_tracking_label_file(path))
        original = [[v if i == 2 else float(v) for i, v in enumerate(r)] for r in _raw_rows(path)]
        written = [[v if i == 2 else float(v) for i, v in enumerate(r)] for r in _raw_rows(tmp_path / name)]
        assert written == original


def test_calib_both_spellings(shared_data: Path, tmp_path: Path) -> None:
    """The original tracking release writes ``R_rect 1 0 ...`` / ``Tr_velo_cam`` without colons."""
    object_spelling = shared_data / "kitti/tracking/training/calib/0001.txt"
    text = object_spelling.read_text()
    release = (
        text.replace("R0_rect:", "R_rect")
        .replace("Tr_velo_to_cam:", "Tr_velo_cam")
        .replace("Tr_imu_to_velo:", "Tr_imu_velo")
    )
    release = release.replace("P0:", "P0").replace("P2:", "P2")
    (tmp_path / "release.txt").write_text(release)
    a, b = read_calib_file(object_spelling), read_calib_file(tmp_path / "release.txt")
    assert sorted(a) == sorted(b) == ["P0", "P1", "P2", "P3", "R0_rect", "Tr_imu_to_velo", "Tr_velo_to_cam"]
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_real_val_split_from_seqmap(shared_data: Path) -> None:
    ds = load_dataset(TRACKING_YAML, split="val")
    seqmap = read_seqmap(shared_data / "kitti/tracking/evaluate_tracking.seqmap.val")
    assert (
        list(ds.sequences())
        == list(seqmap)
        == ["0001", "0006", "0008", "0010", "0012", "0013", "0014", "0015", "0016", "0018", "0019"]
    )
    assert len(ds) == sum(last - first + 1 for first, last in seqmap.values()) == 3919
    assert ds.frame_key(len(ds) - 1) == ("0019", 1059)
    with pytest.raises(ConfigError, match="unknown split"):
        load_dataset(TRACKING_YAML, split="vall")


def test_real_check_clean(tracking: KittiTrackingDataset) -> None:
    ds = load_dataset(TRACKING_YAML, splits={"two": [12, 14]}, split="two")
    assert list(ds.sequences()) == ["0012", "0014"] and ds.check() == []


# ---------------------------------------------------------------- oxts, sweeps and bad input on written files


def _oxts_row(lat: float, lon: float, alt: float, yaw: float) -> str:
    return " ".join(str(v) for v in [lat, lon, alt, 0.0, 0.0, yaw] + [0.0] * 24)


def test_oxts_to_poses_devkit_convention() -> None:
    lat0 = 49.0
    scale = np.cos(np.deg2rad(lat0))
    dlon = 10.0 / (scale * 6378137.0 * np.pi / 180)  # 10 m east at this latitude
    oxts = np.array([[float(v) for v in _oxts_row(lat0, 8.0, 100.0, 0.3).split()],
                     [float(v) for v in _oxts_row(lat0, 8.0 + dlon, 102.0, 0.3 + np.pi / 2).split()]])  # fmt: skip
    poses = oxts_to_poses(oxts)
    np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-12)
    # world = IMU frame at row 0, whose x axis points 0.3 rad north of east
    c, s = np.cos(0.3), np.sin(0.3)
    np.testing.assert_allclose(poses[1][:3, 3], [10 * c, -10 * s, 2.0], atol=1e-6)
    np.testing.assert_allclose(poses[1][:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-9)


def _write_sequence(root: Path, frames: int = 3, oxts: int | None = 3) -> Path:
    tr = root / "training"
    (tr / "velodyne/0004").mkdir(parents=True)
    (tr / "calib").mkdir()
    (tr / "label_02").mkdir()
    for f in range(frames):
        np.full((f + 2, 4), f, np.float32).tofile(tr / f"velodyne/0004/{f:06d}.bin")
    calib = (
        "P2 700 0 600 45 0 700 170 0.2 0 0 1 0.003\nR_rect 1 0 0 0 1 0 0 0 1\nTr_velo_cam 0 -1 0 0 0 0 -1 0 1 0 0 0\n"
    )
    (tr / "calib/0004.txt").write_text(calib + "Tr_imu_velo 1 0 0 -1 0 1 0 0 0 0 1 0\n")
    (tr / "label_02/0004.txt").write_text(
        "0 3 Car 0 0 0.1 100 150 200 250 1.5 1.6 3.9 1.0 1.5 20.0 0.0\n"
        "1 3 Car 0 0 0.1 100 150 200 250 1.5 1.6 3.9 1.0 1.5 21.0 0.0\n"
    )
    if oxts is not None:
        (tr / "oxts").mkdir()
        rows = [_oxts_row(49.0, 8.0 + 1e-5 * f, 100.0, 0.0) for f in range(oxts)]
        (tr / "oxts/0004.txt").write_text("\n".join(rows) + "\n")
    path = root / "tracking.yaml"
    path.write_text(yaml.safe_dump({"format": "kitti_tracking", "root": str(root), "classes": ["Car"]}))
    return path


def test_written_sequence_frames_points_and_poses(tmp_path: Path) -> None:
    ds = load_dataset(_write_sequence(tmp_path, frames=3))
    assert len(ds) == 3  # frames counted from the sweeps, labels only cover 0-1
    frames = list(ds)
    assert [len(f.points) for f in frames] == [2, 3, 4]
    assert [len(f.boxes3d) for f in frames] == [1, 1, 0]
    assert frames[1].boxes3d.track_ids.tolist() == [3]
    # frame 0: the IMU is the world origin; the lidar sits 1 m ahead of the IMU (Tr_imu_velo x = -1)
    np.testing.assert_allclose(frames[0].ego_pose.translation, [1.0, 0, 0], atol=1e-9)
    step = 1e-5 * np.pi / 180 * 6378137.0 * np.cos(np.deg2rad(49.0))
    np.testing.assert_allclose(frames[2].ego_pose.translation, [1.0 + 2 * step, 0, 0], atol=1e-6)
    assert ds.check() == []


def test_too_few_oxts_rows(tmp_path: Path) -> None:
    ds = load_dataset(_write_sequence(tmp_path, frames=3, oxts=2))
    with pytest.raises(DataError, match=r"oxts/0004\.txt: no oxts row for frame 2 \(2 rows\)"):
        ds.load_frame(2)
    assert len(ds.check()) == 1


def test_bad_files_each_reported(tmp_path: Path) -> None:
    ds = load_dataset(_write_sequence(tmp_path, frames=3))
    tr = tmp_path / "training"
    np.zeros(5, np.float32).tofile(tr / "velodyne/0004/000001.bin")
    (tr / "label_02/0004.txt").write_text("0 3 Car 0 0 0.1 100 150 200 250 1.5 1.6 3.9 1.0 1.5 nan 0.0\n")
    messages = [str(e) for e in ds.check()]
    assert len(messages) == 2, messages
    assert any("000001.bin: size 20 bytes" in m for m in messages)
    assert any("label_02/0004.txt:1: non-finite value" in m for m in messages)


def test_unknown_class_names_tracking_line(tmp_path: Path) -> None:
    ds = load_dataset(_write_sequence(tmp_path, frames=3))
    (tmp_path / "training/label_02/0004.txt").write_text(
        "0 3 Car 0 0 0.1 100 150 200 250 1.5 1.6 3.9 1.0 1.5 20.0 0.0\n"
        "\n"
        "1 3 Zeppelin 0 0 0.1 100 150 200 250 1.5 1.6 3.9 1.0 1.5 21.0 0.0\n"
    )
    problems = ds.check()
    assert len(problems) == 1 and "label_02/0004.txt:3: unknown class 'Zeppelin'" in str(problems[0])


def test_bad_seqmap_line(tmp_path: Path) -> None:
    (tmp_path / "map.txt").write_text("0001 empty 000000 000010\n0002 oops\n")
    with pytest.raises(CorruptFileError, match=r"map\.txt:2: expected 'seq empty first last'"):
        read_seqmap(tmp_path / "map.txt")
