"""The demo's media: a dataset sequence through predictor + tracker into an MP4, and the real
excerpts' ground truth drawn to PNGs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from perception.core import SE3, Boxes3D, Calibration, CameraIntrinsics, Frame, PointCloud, Predictions
from perception.data.base import DatasetSpec, DriveDataset
from perception.stream.demo import render_demo_video
from perception.tracking import build_tracker
from perception.viz.colors import GT_COLOR, track_color
from perception.viz.samples import render_real_samples

W, H, N = 320, 160, 6
CLASSES = ("Car", "Pedestrian", "Cyclist")


class TinyDrive(DriveDataset):
    """One sequence of N frames: the ego drives +x at 5 m/s behind a car 12 m ahead doing the same."""

    def __init__(self):
        super().__init__(DatasetSpec(format="tiny", root=".", classes=CLASSES))
        R = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
        K = np.array([[150.0, 0, W / 2], [0, 150.0, H / 2], [0, 0, 1]])
        self.calib = Calibration({"cam": SE3.from_rt(R, [0, 0, 0])}, {"cam": CameraIntrinsics(K, W, H)})

    def __len__(self) -> int:
        return N

    def frame_key(self, i: int) -> tuple[str, int]:
        return "drive", i

    def load_frame(self, i: int, *, points: bool = True, images: bool = True) -> Frame:
        ground = np.array([[x, y, -1.5, 0.5] for x in range(-10, 40, 2) for y in range(-10, 11, 2)], np.float32)
        box = Boxes3D(np.array([[12.0, 0.0, -0.75, 4.0, 1.8, 1.5, 0.0]], np.float32), [0])
        image = np.full((H, W, 3), 90, np.uint8)
        pose = SE3.from_rt(np.eye(3), [0.5 * i, 0, 0])
        return Frame("tiny", "drive", i, 0.1 * i, CLASSES, PointCloud(ground), {"cam": image}, self.calib, pose, box)


class EchoPredictor:
    """Predicts the ground truth 1.5 m to the left (so both show), with a score."""

    class_names = CLASSES

    def predict(self, frame: Frame) -> Predictions:
        b = frame.boxes3d
        moved = b.xyz_lwh_yaw + np.array([0, 1.5, 0, 0, 0, 0, 0], np.float32)
        return Predictions(boxes3d=b.replace(xyz_lwh_yaw=moved, scores=np.full(len(b), 0.8, np.float32)))


def test_demo_video_has_every_frame_tracks_and_bev(tmp_path):
    path, stats = render_demo_video(TinyDrive(), EchoPredictor(), build_tracker("3d"), tmp_path / "demo.mp4")
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (ok_img := cap.read())[0]:
        frames.append(ok_img[1])
    assert stats.frames == N and len(frames) == N
    assert frames[0].shape == (H, W + 2 + H, 3), "camera | separator | BEV panel"
    last = frames[-1][:, :W].astype(int)
    tracked = np.abs(last - track_color(1)).sum(axis=2) < 90  # the tracker's first id is 1
    gt = np.abs(last - GT_COLOR).sum(axis=2) < 90
    assert tracked.sum() > 30, "the tracked car is drawn in its track colour"
    assert gt.sum() > 10, "ground truth drawn thin and green under the prediction"
    bev = frames[-1][:, W + 2 :]
    assert (bev.max(axis=2) > 150).sum() > 20, "points, boxes and the ego in the BEV panel"


def test_real_samples_write_pngs(shared_data, tmp_path):
    written = render_real_samples(shared_data, tmp_path, render_3d=False)
    names = {p.name for p in written}
    assert {"kitti_000000.png", "kitti_000001.png", "kitti_000002.png"} <= names
    for p in written:
        image = cv2.imread(str(p))
        assert image is not None and image.shape[0] >= 300 and image.std() > 10
    kitti = cv2.imread(str(tmp_path / "kitti_000000.png"))
    assert kitti.shape[1] > kitti.shape[0] * 4, "the KITTI camera has its BEV panel beside it"


def test_real_samples_skip_what_is_absent(tmp_path):
    assert render_real_samples(tmp_path / "nothing", tmp_path / "out") == []
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad", ["missing_sequence"])
def test_demo_video_unknown_sequence_is_a_clear_error(tmp_path, bad):
    from perception.errors import ConfigError

    with pytest.raises(ConfigError, match="no sequence"):
        render_demo_video(TinyDrive(), None, None, tmp_path / "x.mp4", sequence=bad)
    assert not (tmp_path / "x.mp4").exists()
