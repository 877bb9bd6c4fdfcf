"""Detection / result files and the ``perception track`` command on a tiny KITTI tracking layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception.cli import main
from perception.data.kitti_format import KittiObjects, read_tracking_label_file, write_calib_file, write_label_file
from perception.errors import CorruptFileError
from perception.tracking.kitti_io import read_detections, read_results, read_seqmap

ROW = "0,2,100.0,120.0,180.0,170.0,9.5,1.5,1.6,4.0,1.0,1.6,20.0,0.1,0.05"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "0000.txt"
    p.write_text(text)
    return p


def test_reads_ab3dmot_layout(tmp_path):
    objs = read_detections(write(tmp_path, ROW + "\n" + ROW.replace("0,2", "3,1", 1) + "\n"), n_frames=5)
    assert objs.type.tolist() == ["Car", "Pedestrian"] and objs.frame.tolist() == [0, 3]
    assert objs.score[0] == pytest.approx(9.5) and np.allclose(objs.dimensions_hwl[0], [1.5, 1.6, 4.0])
    assert np.allclose(objs.location[0], [1.0, 1.6, 20.0]) and objs.rotation_y[0] == pytest.approx(0.1)


def test_empty_detection_file_is_no_detections(tmp_path):
    assert len(read_detections(write(tmp_path, ""), n_frames=3)) == 0


@pytest.mark.parametrize(
    "text, message, line",
    [
        (ROW + "\n" + ROW[:-5] + "\n", "expected 15 comma-separated fields, got 14", 2),
        (ROW.replace("9.5", "high") + "\n", "'high' is not a number", 1),
        (ROW.replace("1.5,1.6,4.0", "nan,1.6,4.0") + "\n", "non-finite", 1),
        (ROW.replace("1.5,1.6,4.0", "0,1.6,4.0") + "\n", "not positive", 1),
        (ROW.replace("0,2", "4,2", 1) + "\n" + ROW + "\n", "frames out of order", 2),
        (ROW.replace("0,2", "7,2", 1) + "\n", "outside the sequence", 1),
        (ROW.replace("0,2", "0,9", 1) + "\n", "unknown class id 9", 1),
    ],
)
def test_bad_detection_files_name_file_and_line(tmp_path, text, message, line):
    path = write(tmp_path, text)
    with pytest.raises(CorruptFileError, match=message) as e:
        read_detections(path, n_frames=5)
    assert e.value.path == path and e.value.line == line


def test_kitti_rows_as_detections(tmp_path):
    text = "1 -1 Car 0 0 -1.5 100 120 180 170 1.5 1.6 4.0 1.0 1.6 20.0 0.1 0.8\n"
    objs = read_detections(write(tmp_path, text), n_frames=2)
    assert objs.frame.tolist() == [1] and objs.score.tolist() == [0.8]


def test_results_with_a_repeated_track_id_are_refused(tmp_path):
    row = "0 4 Car 0 0 -1.5 100 120 180 170 1.5 1.6 4.0 1.0 1.6 20.0 0.1 0.8\n"
    with pytest.raises(CorruptFileError, match="track id 4 appears twice in frame 0") as e:
        read_results(write(tmp_path, row + row), n_frames=2)
    assert e.value.line == 2


def tiny_kitti_tracking(root: Path, frames: int = 12) -> Path:
    """Two sequences, one car each driving away, written in the KITTI tracking layout; returns the YAML."""
    calib = {
        "P2": np.array([[700.0, 0, 600, 0], [0, 700, 180, 0], [0, 0, 1, 0]]),
        "R0_rect": np.eye(3),
        "Tr_velo_to_cam": np.array([[0.0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0]]),
    }
    for seq in ("0000", "0001"):
        write_calib_file(root / "training" / "calib" / f"{seq}.txt", calib)
        n = frames
        z = 10.0 + 0.8 * np.arange(n)
        x = np.full(n, 1.0 if seq == "0000" else -2.0)
        u = 600 + 700 * x / z
        bbox = np.column_stack([u - 2000 / z, 180 - 1000 / z, u + 2000 / z, 180 + 1000 / z])
        gt = KittiObjects(
            type=np.array(["Car"] * n, "<U16"), truncated=np.zeros(n), occluded=np.zeros(n, np.int64), alpha=np.zeros(n),
            bbox=bbox, dimensions_hwl=np.tile([1.5, 1.6, 4.0], (n, 1)), location=np.column_stack([x, np.full(n, 1.6), z]),
            rotation_y=np.full(n, -np.pi / 2), track_id=np.zeros(n, np.int64), frame=np.arange(n),
        )  # fmt: skip
        write_label_file(root / "training" / "label_02" / f"{seq}.txt", gt)
        det_rows = [
            f"{f},2,{bbox[f, 0]:.2f},{bbox[f, 1]:.2f},{bbox[f, 2]:.2f},{bbox[f, 3]:.2f},{5.0:.2f},1.5,1.6,4.0,{x[f] + 0.05:.3f},1.6,{z[f]:.3f},{-np.pi / 2:.4f},0"
            for f in range(n)
            if f != 5  # one missed detection
        ]
        (root / "det").mkdir(exist_ok=True)
        (root / "det" / f"{seq}.txt").write_text("\n".join(det_rows) + "\n")
    (root / "seqmap.val").write_text(f"0000 empty 000000 {frames - 1:06d}\n0001 empty 000000 {frames - 1:06d}\n")
    yaml = root / "tracking.yaml"
    yaml.write_text(
        f"format: kitti_tracking\nroot: {root}\nsplits: {{val: seqmap.val}}\nclasses: [Car, Pedestrian, Cyclist]\n"
    )
    return yaml


def test_track_command_writes_results_and_evaluates(tmp_path, capsys):
    yaml = tiny_kitti_tracking(tmp_path)
    out = tmp_path / "out"
    code = main(
        [
            "track",
            "--data",
            str(yaml),
            "--split",
            "val",
            "--detections",
            str(tmp_path / "det"),
            "--out",
            str(out),
            "--eval",
            "--no-progress",
        ]
    )
    assert code == 0
    res = read_tracking_label_file(out / "0000.txt")
    assert set(res.track_id.tolist()) == {1}  # one car, one id, through the missed detection
    assert np.allclose(res.location[res.frame == 3], [[1.05, 1.6, 12.4]], atol=0.05)  # back in camera coordinates
    printed = capsys.readouterr().out
    assert "car" in printed and "sAMOTA" in printed
    assert read_seqmap(tmp_path / "seqmap.val")[1] == ("0001", 0, 11)


def test_track_command_bad_detection_file_is_one_line_exit_2(tmp_path, capsys):
    yaml = tiny_kitti_tracking(tmp_path)
    (tmp_path / "det" / "0001.txt").write_text("0,2,1,2,3\n")
    code = main(
        [
            "track",
            "--data",
            str(yaml),
            "--split",
            "val",
            "--detections",
            str(tmp_path / "det"),
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "0001.txt:1:" in err and "expected 15 comma-separated fields" in err
    assert not (tmp_path / "o" / "0001.txt").exists()


SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kitti" / "tracking"


def test_cyclist_detections_in_ab3dmot_layout_track_and_evaluate(tmp_path):
    """Cyclist rows (type 3) go through the same reader, tracker preset and evaluation as Car / Pedestrian."""
    if not SHARED.exists():
        pytest.skip("../shared/data (real KITTI tracking labels) is absent")
    from perception.eval.tracking import evaluate_kitti_tracking_dir
    from perception.tracking.presets import tracker_for_classes
    from perception.tracking.run import KITTI_TRACK_CLASSES, track_kitti_folder

    gt = read_tracking_label_file(SHARED / "training" / "label_02" / "0012.txt")
    cyc = gt[np.flatnonzero(gt.type == "Cyclist")]
    rng = np.random.default_rng(0)
    loc = cyc.location + rng.normal(0, 0.05, cyc.location.shape)
    rows = [
        f"{f},3,{b[0]},{b[1]},{b[2]},{b[3]},{s},{d[0]},{d[1]},{d[2]},{p[0]},{p[1]},{p[2]},{r},{a}"
        for f, b, s, d, p, r, a in zip(
            cyc.frame, cyc.bbox, rng.uniform(2, 8, len(cyc)), cyc.dimensions_hwl, loc, cyc.rotation_y, cyc.alpha
        )
    ]
    (tmp_path / "det").mkdir()
    (tmp_path / "det" / "0012.txt").write_text("\n".join(rows) + "\n")
    track_kitti_folder(
        lambda: tracker_for_classes(KITTI_TRACK_CLASSES), tmp_path / "det", SHARED / "training" / "calib", [("0012", 79)], tmp_path / "out", progress=False
    )  # fmt: skip
    m = evaluate_kitti_tracking_dir(
        SHARED / "training" / "label_02", tmp_path / "out", {"0012": 79}, classes=("cyclist",)
    )["cyclist"]
    assert m["IDS"] == 0 and m["MOTA"] > 0.8 and m["sAMOTA"] > 0.8


def test_detect_then_track_writes_kitti_results(tmp_path):
    """The ``--weights`` path: a predictor per frame, then the tracker, then KITTI result rows."""
    from perception.core import Predictions
    from perception.data.registry import load_dataset
    from perception.tracking import Tracker3D
    from perception.tracking.run import track_dataset_with_predictor

    yaml = tiny_kitti_tracking(tmp_path)
    dataset = load_dataset(yaml, split="val")

    class GroundTruthPredictor:  # stands in for load_predictor(weights)
        def predict(self, frame):
            b = frame.boxes3d
            return Predictions(boxes3d=b.replace(scores=np.full(len(b), 0.9, np.float32), track_ids=None))

    stats = track_dataset_with_predictor(
        GroundTruthPredictor(), Tracker3D({"min_hits": 1}), dataset, tmp_path / "out", progress=False
    )
    assert stats["frames"] == 24
    res = read_tracking_label_file(tmp_path / "out" / "0001.txt")
    assert len(res) == 12 and set(res.track_id.tolist()) == {1}
    assert np.allclose(res.location[:, 0], -2.0, atol=0.01) and np.allclose(res.score, 0.9)
