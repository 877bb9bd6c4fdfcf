"""Dataset -> YOLO layout: label arithmetic, clipping and filters, projected 3D boxes, linked images,
data YAML, and one clear error per bad input (converter and the YOLO data check)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from perception.core import SE3, Boxes2D, Boxes3D, Calibration, CameraIntrinsics, Frame, project_boxes_to_rects
from perception.data.base import DatasetSpec, DriveDataset
from perception.data.convert_yolo import convert_to_yolo, frame_boxes2d, yolo_label_lines
from perception.errors import ConfigError, CorruptFileError, DataError, UnknownClassError
from perception.models.yolo.data import check_yolo_data, label_path

CLASSES = ("Car", "Pedestrian")
W, H = 80, 40


class TinyDataset(DriveDataset):
    """In-memory frames built by the test: ``frames[i]`` -> kwargs of ``Frame``."""

    name = "tiny"

    def __init__(self, frames: list[dict], split: str = "train"):
        super().__init__(DatasetSpec(format="tiny", root=Path("."), classes=CLASSES, split=split))
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def frame_key(self, i: int) -> tuple[str, int]:
        return "seq0", i

    def load_frame(self, i: int, *, points: bool = True, images: bool = True) -> Frame:
        kwargs = {"images": {"cam": np.full((H, W, 3), 100, np.uint8)}, **self.frames[i]}
        return Frame("tiny", "seq0", i, 0.0, CLASSES, **kwargs)


def _boxes(xyxy, labels, **attributes) -> dict:
    return {"boxes2d": {"cam": Boxes2D(np.array(xyxy, np.float32).reshape(-1, 4), labels, attributes=attributes)}}


def test_label_lines_hand_computed():
    lines = yolo_label_lines(Boxes2D(np.array([[10, 5, 30, 25]], np.float32), [1]), W, H)
    assert lines == ["1 0.250000 0.375000 0.250000 0.500000"]  # cx 20/80, cy 15/40, w 20/80, h 20/40


def test_clipping_and_filters():
    frame = TinyDataset([_boxes([[-10, 0, 10, 20], [90, 0, 100, 10], [5, 5, 5.5, 20], [20, 10, 40, 30]], [0, 0, 1, 1],
                                truncated=[0.5, 0.0, 0.0, 0.1])])[0]  # fmt: skip
    boxes = frame_boxes2d(frame, "cam")
    # left box clipped to x1=0, box outside the image and the 0.5 px sliver dropped
    np.testing.assert_allclose(boxes.xyxy, [[0, 0, 10, 20], [20, 10, 40, 30]])
    assert boxes.labels.tolist() == [0, 1]
    visible = frame_boxes2d(frame, "cam", min_visibility=0.6)  # 1 - truncated: 0.5 fails, 0.9 passes
    assert visible.labels.tolist() == [1]


def test_min_points_needs_counts():
    frame = TinyDataset([_boxes([[0, 0, 10, 10]], [0])])[0]
    with pytest.raises(ConfigError, match="min_points"):
        frame_boxes2d(frame, "cam", min_points=5)
    counted = TinyDataset([_boxes([[0, 0, 10, 10], [20, 0, 30, 10]], [0, 1], num_points=[3, 8])])[0]
    assert frame_boxes2d(counted, "cam", min_points=5).labels.tolist() == [1]


def _camera_calibration() -> Calibration:
    # camera looks along ego +x: x_cam = -y_ego, y_cam = -z_ego, z_cam = x_ego
    R = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    K = np.array([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]])
    return Calibration({"cam": SE3.from_rt(R, np.zeros(3))}, {"cam": CameraIntrinsics(K, W, H)})


def test_projected_3d_boxes_when_no_2d_labels():
    calib = _camera_calibration()
    boxes3d = Boxes3D(np.array([[10, 0, 0, 4, 2, 1.5, 0], [-10, 0, 0, 4, 2, 1.5, 0]], np.float32), [0, 1])
    frame = TinyDataset([{"boxes3d": boxes3d, "calibration": calib}])[0]
    boxes = frame_boxes2d(frame, "cam")
    expected, valid = project_boxes_to_rects(boxes3d.xyz_lwh_yaw, calib, "cam")
    assert valid.tolist() == [True, False]  # the box behind the camera is dropped
    np.testing.assert_allclose(boxes.xyxy, expected[:1], atol=1e-4)
    # hand check: front face at x=8 m, half width 1 m -> 40 px * 1 / 8 = 5 px either side of cx=40
    assert boxes.xyxy[0, 0] == pytest.approx(40 - 40 * 1 / 8, abs=1e-3)


def test_convert_writes_layout_and_adds_splits(tmp_path):
    data_yaml = convert_to_yolo(TinyDataset([_boxes([[10, 5, 30, 25]], [1]), {}], split="train"), tmp_path)
    convert_to_yolo(TinyDataset([_boxes([[0, 0, 8, 8]], [0])], split="val"), tmp_path)
    data = yaml.safe_load(data_yaml.read_text())
    assert (
        data["names"] == {0: "Car", 1: "Pedestrian"} and data["train"] == "images/train" and data["val"] == "images/val"
    )
    labels = sorted((tmp_path / "labels" / "train").glob("*.txt"))
    assert [p.name for p in labels] == ["seq0_000000_cam.txt", "seq0_000001_cam.txt"]
    assert labels[0].read_text() == "1 0.250000 0.375000 0.250000 0.500000\n"
    assert labels[1].read_text() == ""  # a frame without objects gets an empty file
    info = check_yolo_data(data_yaml)
    assert info["names"] == ["Car", "Pedestrian"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_failed_conversion_keeps_previous_split(tmp_path):
    convert_to_yolo(TinyDataset([_boxes([[10, 5, 30, 25]], [1])]), tmp_path)
    bad = TinyDataset([_boxes([[10, 5, 30, 25]], [1]), _boxes([[0, 0, np.nan, 5]], [0])])
    with pytest.raises(CorruptFileError, match="non-finite"):
        convert_to_yolo(bad, tmp_path)
    assert len(list((tmp_path / "labels" / "train").glob("*.txt"))) == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_datasets(tmp_path):
    with pytest.raises(DataError, match="no camera images"):
        convert_to_yolo(TinyDataset([{"images": {}}]), tmp_path / "a")
    with pytest.raises(UnknownClassError, match="outside"):
        convert_to_yolo(TinyDataset([_boxes([[0, 0, 5, 5]], [7])]), tmp_path / "b")
    with pytest.raises(DataError, match="no frames"):
        convert_to_yolo(TinyDataset([]), tmp_path / "c")


def _yolo_dataset(root: Path, label_text: str | None) -> Path:
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "images" / "train" / "a.png").write_bytes(b"x")
    if label_text is not None:
        (root / "labels" / "train" / "a.txt").write_text(label_text)
    path = root / "data.yaml"
    path.write_text(
        yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/train", "names": ["Car"]})
    )
    return path


@pytest.mark.parametrize(
    ("label_text", "message"),
    [
        ("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n", r"a\.txt:2: class id 1 outside 0..0"),
        ("0 0.95 0.5 0.2 0.2\n", r"a\.txt:1: box .* not inside"),
        ("0 0.5 0.5 0.2\n", r"a\.txt:1: expected 5 fields"),
        ("0 0.5 x 0.2 0.2\n", r"a\.txt:1: not numbers"),
        (None, r"a\.txt: label file missing"),
    ],
)
def test_yolo_data_check_names_file_and_line(tmp_path, label_text, message):
    with pytest.raises(DataError, match=message):
        check_yolo_data(_yolo_dataset(tmp_path, label_text))


def test_yolo_data_pointing_nowhere(tmp_path):
    path = tmp_path / "data.yaml"
    path.write_text(
        yaml.safe_dump({"path": str(tmp_path / "nope"), "train": "images/train", "val": "images/val", "names": ["Car"]})
    )
    with pytest.raises(DataError, match="does not exist"):
        check_yolo_data(path)
    path.write_text(yaml.safe_dump({"train": "images/train"}))
    with pytest.raises(ConfigError, match="names"):
        check_yolo_data(path)
    (tmp_path / "images" / "train").mkdir(parents=True)
    path.write_text(yaml.safe_dump({"train": "images/train", "val": "images/train", "names": ["Car"]}))
    with pytest.raises(DataError, match="no images"):
        check_yolo_data(path)


def test_label_path_rule():
    assert label_path(Path("/d/images/train/x/a.png")) == Path("/d/labels/train/x/a.txt")
    assert label_path(Path("/images/d/images/a.jpg")) == Path("/images/d/labels/a.txt")  # the last 'images' only


def test_real_kitti_links_images_and_keeps_class_rows(shared_data, tmp_path):
    from perception.data.kitti_format import read_label_file
    from perception.data.registry import load_dataset

    dataset = load_dataset(Path(__file__).parents[1] / "datasets" / "kitti.yaml")
    data_yaml = convert_to_yolo(dataset, tmp_path)
    images = sorted((tmp_path / "images").rglob("*.png"))
    assert len(images) == len(dataset) and all(p.is_symlink() for p in images)
    for image in images:
        index = image.name.split("_")[0]
        rows = read_label_file(shared_data / "kitti/object/training/label_2" / f"{index}.txt")
        wanted = sum(t in ("Car", "Pedestrian", "Cyclist") for t in rows.type)
        assert len(label_path(image).read_text().splitlines()) == wanted
    assert check_yolo_data(data_yaml)["names"] == ["Car", "Pedestrian", "Cyclist"]
