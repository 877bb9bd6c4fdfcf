"""``perception data synth``: the KITTI object and tracking layouts round-trip through the readers and loaders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from perception.cli import main
from perception.core import wrap_angle
from perception.data.kitti_format import read_calib_file, read_label_file, read_points_bin, read_tracking_label_file
from perception.data.kitti_tracking import oxts_to_poses, read_oxts_file
from perception.data.registry import load_dataset
from perception.data.synthetic import SyntheticDataset, synthetic_calib_raw, write_synthetic_dataset

FRAMES, SEQUENCES = 3, 2


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("synth"), frames=FRAMES, sequences=SEQUENCES, seed=5)


@pytest.fixture(scope="module")
def mem() -> SyntheticDataset:
    return SyntheticDataset.from_options(sequences=SEQUENCES, frames=FRAMES, seed=5, val_sequences=1)


def test_layout(written):
    obj, trk = written / "object" / "training", written / "tracking" / "training"
    n = FRAMES * SEQUENCES
    for folder, ext in (("velodyne", "bin"), ("image_2", "png"), ("calib", "txt"), ("label_2", "txt")):
        assert sorted(p.name for p in (obj / folder).iterdir()) == [f"{i:06d}.{ext}" for i in range(n)]
    for seq in ("0000", "0001"):
        assert len(list((trk / "velodyne" / seq).glob("*.bin"))) == FRAMES
        assert len(list((trk / "image_02" / seq).glob("*.png"))) == FRAMES
        for folder in ("label_02", "calib", "oxts"):
            assert (trk / folder / f"{seq}.txt").is_file()
    assert (written / "object" / "ImageSets" / "train.txt").read_text().split() == ["000000", "000001", "000002"]
    assert (written / "object" / "ImageSets" / "val.txt").read_text().split() == ["000003", "000004", "000005"]
    assert not list(written.rglob(".*tmp*"))  # nothing half written


def test_files_round_trip_through_kitti_readers(written, mem):
    obj = written / "object" / "training"
    raw = read_calib_file(obj / "calib" / "000004.txt")
    for key, m in synthetic_calib_raw().items():
        assert np.allclose(raw[key], m, rtol=1e-11, atol=1e-11)
    frame = mem.load_frame(4)
    assert np.array_equal(read_points_bin(obj / "velodyne" / "000004.bin"), frame.points.data)
    assert np.array_equal(cv2.imread(str(obj / "image_2" / "000004.png")), frame.images["image_2"])
    labels, expected = read_label_file(obj / "label_2" / "000004.txt"), mem.kitti_objects(4)
    assert list(labels.type) == list(expected.type)
    assert np.allclose(labels.location, expected.location, atol=0.005)
    assert np.allclose(labels.bbox, expected.bbox, atol=0.005)
    assert np.array_equal(labels.occluded, expected.occluded)
    tracking = read_tracking_label_file(written / "tracking" / "training" / "label_02" / "0001.txt")
    rows = tracking[tracking.frame == 1]
    assert np.array_equal(rows.track_id, frame.boxes3d.track_ids)
    assert set(np.unique(tracking.truncated)) <= {0.0, 1.0, 2.0}


def test_kitti_object_loader_reads_the_same_frames(written, mem):
    kitti = load_dataset(written / "kitti_object.yaml")
    assert len(kitti) == len(mem) and len(load_dataset(written / "kitti_object.yaml", split="val")) == FRAMES
    a, b = mem.load_frame(2), kitti.load_frame(2)
    assert np.array_equal(a.points.data, b.points.data)
    assert np.allclose(a.boxes3d.xyz, b.boxes3d.xyz, atol=0.01)  # labels keep 2 decimals
    assert np.abs(wrap_angle(a.boxes3d.yaw - b.boxes3d.yaw)).max() < 0.01
    assert np.array_equal(a.boxes3d.labels, b.boxes3d.labels)


def test_kitti_tracking_loader_recovers_ids_and_ego_poses(written, mem):
    tracking = load_dataset(written / "kitti_tracking.yaml", split="val")
    assert len(tracking) == FRAMES
    for i in range(FRAMES):
        a, b = mem.load_frame(FRAMES + i, points=False, images=False), tracking.load_frame(i, images=False)
        assert np.array_equal(a.boxes3d.track_ids, b.boxes3d.track_ids)
        assert np.allclose(a.ego_pose.matrix, b.ego_pose.matrix, atol=1e-6)
        assert np.allclose(a.boxes3d.xyz, b.boxes3d.xyz, atol=1e-4)
    poses = oxts_to_poses(read_oxts_file(written / "tracking" / "training" / "oxts" / "0001.txt"))
    assert np.allclose(poses[0], np.eye(4), atol=1e-9) and np.linalg.norm(poses[-1][:3, 3]) > 0.5


def test_cli_writes_the_layout(tmp_path, capsys):
    assert (
        main(["data", "synth", "--out", str(tmp_path / "s"), "--frames", "1", "--sequences", "1", "--seed", "2"]) == 0
    )
    assert str(tmp_path / "s") in capsys.readouterr().out
    assert (tmp_path / "s" / "object" / "training" / "label_2" / "000000.txt").is_file()
    assert (tmp_path / "s" / "tracking" / "training" / "oxts" / "0000.txt").read_text().count("\n") == 1
    assert "  val:" not in (tmp_path / "s" / "kitti_object.yaml").read_text()  # one sequence: no val split


def test_cli_bad_input_is_one_line_error(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["data", "synth", "--out", str(tmp_path / "file"), "--frames", "1", "--sequences", "1"]) == 2
    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--frames", "0", "--sequences", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not a folder" in err[0] and "options.frames" in err[1]
    assert not (tmp_path / "d").exists()
