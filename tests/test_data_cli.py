"""``perception data info|check``: output on the real KITTI excerpt, exit codes and one-line errors on bad data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from perception.cli import main
from perception.data.inspect import dataset_info, format_info
from perception.data.registry import load_dataset

ROOT = Path(__file__).resolve().parents[1]
CALIB = "P2: 700 0 600 45 0 700 170 0.2 0 0 1 0.003\nR0_rect: 1 0 0 0 1 0 0 0 1\nTr_velo_to_cam: 0 -1 0 0 0 0 -1 0 1 0 0 0\n"
LABEL = "Car 0.00 0 0.10 100.00 150.00 200.00 250.00 1.50 1.60 3.90 1.00 1.50 20.00 0.00\n"


def _tiny_kitti(root: Path, n: int = 3) -> Path:
    tr = root / "training"
    for sub in ("velodyne", "calib", "label_2"):
        (tr / sub).mkdir(parents=True)
    for i in range(n):
        np.zeros((10 * (i + 1), 4), np.float32).tofile(tr / "velodyne" / f"{i:06d}.bin")
        (tr / "calib" / f"{i:06d}.txt").write_text(CALIB)
        (tr / "label_2" / f"{i:06d}.txt").write_text(LABEL * i)
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump({"format": "kitti", "root": str(root), "classes": ["Car", "Pedestrian"]}))
    return path


def test_info_counts(tmp_path: Path) -> None:
    info = dataset_info(load_dataset(_tiny_kitti(tmp_path)))
    assert info["frames"] == 3 and info["labelled_frames"] == 3
    assert info["boxes_per_class"] == {"Car": 3, "Pedestrian": 0}
    assert info["points_per_frame"] == {"min": 10, "mean": 20.0, "max": 30}
    assert info["camera_sizes"]["image_2"] == {"1242x375": 3}  # no images: the KITTI default size
    text = format_info(info)
    assert "min 10 / mean 20 / max 30" in text and "Car                    3" in text


def test_info_limit_reads_evenly_spaced_frames(tmp_path: Path) -> None:
    info = dataset_info(load_dataset(_tiny_kitti(tmp_path)), limit=2)
    assert info["frames"] == 3 and info["frames_read"] == 2
    assert info["points_per_frame"]["max"] == 30 and info["boxes_per_class"]["Car"] == 2  # frames 0 and 2


def test_cli_info_real_kitti(shared_data: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "info", str(ROOT / "datasets/kitti.yaml")]) == 0
    out = capsys.readouterr().out
    assert "frames     3 in 1 sequence(s), 3 labelled" in out
    assert "min 115384 / mean 120848 / max 126891" in out
    assert "1224x370 (1 frames), 1242x375 (2 frames)" in out
    assert "Car                    2" in out and "Cyclist                1" in out


def test_cli_info_real_tracking_tracks(shared_data: Path, capsys: pytest.CaptureFixture) -> None:
    yaml_path = ROOT / "datasets/kitti_tracking.yaml"
    assert main(["data", "info", str(yaml_path), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "frames     3919 in 11 sequence(s)" in out
    assert "tracks" in out.splitlines()[-4]


def test_cli_check_clean_and_broken(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _tiny_kitti(tmp_path)
    assert main(["data", "check", str(path)]) == 0
    assert "3 frames of kitti checked: 0 problem(s)" in capsys.readouterr().out
    tr = tmp_path / "training"
    np.zeros(3, np.float32).tofile(tr / "velodyne/000001.bin")
    (tr / "label_2/000002.txt").write_text("Car 0 0 0 1 2 3\n")
    assert main(["data", "check", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[-1].endswith("2 problem(s)")
    assert (
        "000001.bin: size 12 bytes" in lines[0] and "label_2/000002.txt:1: expected 15 or 16 fields, got 7" in lines[1]
    )


def test_cli_check_missing_root(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "gone.yaml"
    path.write_text(yaml.safe_dump({"format": "kitti", "root": str(tmp_path / "nowhere"), "classes": ["Car"]}))
    assert main(["data", "check", str(path)]) == 1
    assert "nowhere/training: dataset folder not found" in capsys.readouterr().out


def test_cli_info_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _tiny_kitti(tmp_path)
    (tmp_path / "training/label_2/000001.txt").write_text(LABEL.replace("Car", "Boat"))
    assert main(["data", "info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ") and "000001.txt:1: unknown class 'Boat'" in err


def test_progress_bars_in_logs_update_rarely(tmp_path: Path) -> None:
    """stderr piped (a log, CI): a bar redraws every 30 s, not 10 times a second. A fresh process, as
    tqdm reads its environment defaults when it is first imported."""
    env = {k: v for k, v in os.environ.items() if k != "TQDM_MININTERVAL"}
    cmd = [sys.executable, "-c", "import sys; from perception.cli import main; sys.exit(main())", "data", "synth", "--out", str(tmp_path / "syn"), "--frames", "12",
           "--sequences", "1"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert 1 <= done.stderr.count("synthetic frames") <= 2  # the first and the final state
