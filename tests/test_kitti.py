"""KITTI object loader: real frames (counts, calibration chain, round trip) and bad input on tiny written files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from perception.core import project_boxes_to_rects
from perception.data.kitti import KittiDataset, png_size
from perception.data.kitti_format import (
    format_label_lines,
    kitti_difficulty,
    read_calib_file,
    read_label_file,
    read_points_bin,
    write_label_file,
)
from perception.data.registry import load_dataset
from perception.errors import ConfigError, CorruptFileError, DataError, UnknownClassError

ROOT = Path(__file__).resolve().parents[1]
KITTI_YAML = ROOT / "datasets" / "kitti.yaml"
CLASSES = ("Car", "Pedestrian", "Cyclist")
DROPPED = ("Van", "Truck", "Person_sitting", "Tram", "Misc", "DontCare")


@pytest.fixture(scope="module")
def kitti(shared_data: Path) -> KittiDataset:
    return load_dataset(KITTI_YAML)


def test_real_point_counts_equal_file_sizes(kitti: KittiDataset, shared_data: Path) -> None:
    assert kitti.ids == ["000000", "000001", "000002"]
    for i, frame_id in enumerate(kitti.ids):
        path = shared_data / "kitti/object/training/velodyne" / f"{frame_id}.bin"
        frame = kitti.load_frame(i, images=False)
        assert len(frame.points) == path.stat().st_size // 16
        np.testing.assert_array_equal(frame.points.data, np.fromfile(path, np.float32).reshape(-1, 4))


def test_real_box_counts_equal_label_lines(kitti: KittiDataset, shared_data: Path) -> None:
    expected_counts = {"000000": 1, "000001": 2, "000002": 1}  # Truck, DontCare... dropped by class_map
    for i, frame_id in enumerate(kitti.ids):
        lines = (shared_data / "kitti/object/training/label_2" / f"{frame_id}.txt").read_text().split("\n")
        types = [line.split()[0] for line in lines if line.strip()]
        kept = [t for t in types if t in CLASSES]
        frame = kitti.load_frame(i, points=False, images=False)
        assert len(frame.boxes3d) == len(kept) == expected_counts[frame_id]
        assert [CLASSES[k] for k in frame.boxes3d.labels] == kept
        assert len(kitti.kitti_objects(i)) == len(types)
        assert len(frame.boxes2d["image_2"]) == len(kept)
        assert set(frame.boxes3d.attributes) >= {"truncated", "occluded", "alpha", "box2d", "difficulty"}


def test_real_projected_boxes_enclose_label_2d_boxes(kitti: KittiDataset) -> None:
    """The calibration chain velo -> rect -> image_2 is right if every projected 3D box covers its 2D label."""
    checked = 0
    for i in range(len(kitti)):
        frame = kitti.load_frame(i, points=False)
        objs = kitti.kitti_objects(i)
        keep = np.array([t != "DontCare" for t in objs.type])
        cls = tuple(sorted(set(objs.type[keep])))
        boxes, _ = _all_boxes(kitti, i, cls)
        rects, valid = project_boxes_to_rects(boxes.xyz_lwh_yaw, frame.calibration, "image_2")
        assert valid.all()
        label = objs.bbox[keep]
        tol = 0.05 * np.concatenate([label[:, 2:] - label[:, :2]] * 2, axis=1)
        assert (rects[:, :2] <= label[:, :2] + tol[:, :2]).all(), (rects, label)
        assert (rects[:, 2:] >= label[:, 2:] - tol[:, 2:]).all(), (rects, label)
        # and tight: a wrong extrinsic would shift the rectangle, not only grow it
        assert np.abs(rects - label).max() < 0.15 * (label[:, 2:] - label[:, :2]).max() + 5
        checked += len(label)
    assert checked == 6  # 10 rows in 000000-000002, 4 of them DontCare


def _all_boxes(kitti: KittiDataset, i: int, classes: tuple[str, ...]):
    from perception.data.kitti_format import objects_to_boxes3d

    calib = kitti.load_frame(i, points=False, images=False).calibration
    return objects_to_boxes3d(kitti.kitti_objects(i), calib, classes, {"DontCare": None})


def test_real_images_and_sizes(kitti: KittiDataset, shared_data: Path) -> None:
    frame = kitti.load_frame(0, points=False)
    image = frame.images["image_2"]
    assert image.dtype == np.uint8 and image.shape == (370, 1224, 3)
    assert png_size(shared_data / "kitti/object/training/image_2/000000.png") == (1224, 370)
    cam = kitti.load_frame(0, points=False, images=False).calibration.cameras["image_2"]
    assert (cam.width, cam.height) == (1224, 370)


def test_real_label_round_trip_exact(shared_data: Path, tmp_path: Path) -> None:
    for path in sorted((shared_data / "kitti/object/training/label_2").glob("*.txt")):
        objs = read_label_file(path)
        out = tmp_path / path.name
        write_label_file(out, objs)
        original = [
            [float(v) if i else v for i, v in enumerate(line.split())] for line in path.read_text().splitlines()
        ]
        written = [[float(v) if i else v for i, v in enumerate(line.split())] for line in out.read_text().splitlines()]
        assert written == original


def test_real_calib_values(shared_data: Path) -> None:
    raw = read_calib_file(shared_data / "kitti/object/training/calib/000000.txt")
    assert raw["P2"].shape == (3, 4) and raw["R0_rect"].shape == (3, 3)
    assert raw["P2"][0, 0] == pytest.approx(707.0493) and raw["P2"][1, 3] == pytest.approx(-0.3454157)


def _objs(rows: list[str]):
    from perception.data.kitti_format import parse_label_rows

    return parse_label_rows([(i + 1, r.split()) for i, r in enumerate(rows)], Path("x.txt"), tracking=False)


def test_difficulty_devkit_rules() -> None:
    rows = [
        "Car 0.00 0 0 0 0 10 41 1 1 1 0 0 10 0",  # 41 px, visible: easy
        "Car 0.00 0 0 0 0 10 40 1 1 1 0 0 10 0",  # exactly 40 px: not easy (devkit: height <= 40 ignored)
        "Car 0.20 1 0 0 0 10 30 1 1 1 0 0 10 0",  # moderate
        "Car 0.40 2 0 0 0 10 30 1 1 1 0 0 10 0",  # hard
        "Car 0.00 0 0 0 0 10 25 1 1 1 0 0 10 0",  # 25 px: too small for any
        "Car 0.00 3 0 0 0 10 99 1 1 1 0 0 10 0",  # occlusion 3 (unknown): none
        "Car 0.60 0 0 0 0 10 99 1 1 1 0 0 10 0",  # truncated > 0.5: none
        "Car 0.15 0 0 0 20 10 70 1 1 1 0 0 10 0",  # truncation exactly 0.15, 50 px: easy
    ]
    assert kitti_difficulty(_objs(rows)).tolist() == [0, 1, 1, 2, -1, -1, -1, 0]


# ---------------------------------------------------------------- bad input on a tiny written dataset

CALIB = (
    "P2: 700 0 600 45 0 700 170 0.2 0 0 1 0.003\n"
    "R0_rect: 1 0 0 0 1 0 0 0 1\n"
    "Tr_velo_to_cam: 0 -1 0 0 0 0 -1 0 1 0 0 0\n"
)
LABEL = "Car 0.00 0 0.10 100.00 150.00 200.00 250.00 1.50 1.60 3.90 1.00 1.50 20.00 0.00\n"


def _write_dataset(root: Path, n: int = 2, image_sets: bool = False) -> Path:
    tr = root / "training"
    for sub in ("velodyne", "calib", "label_2"):
        (tr / sub).mkdir(parents=True)
    for i in range(n):
        np.arange(40, dtype=np.float32).tofile(tr / "velodyne" / f"{i:06d}.bin")
        (tr / "calib" / f"{i:06d}.txt").write_text(CALIB)
        (tr / "label_2" / f"{i:06d}.txt").write_text(
            LABEL + "DontCare -1 -1 -10 1 2 3 4 -1 -1 -1 -1000 -1000 -1000 -10\n"
        )
    spec = {"format": "kitti", "root": str(root), "classes": list(CLASSES), "class_map": {"DontCare": None}}
    if image_sets:
        (root / "ImageSets").mkdir()
        (root / "ImageSets" / "val.txt").write_text("000001\n")
        spec["splits"] = {"val": "ImageSets/val.txt", "few": [0]}
    path = root / "kitti.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_written_dataset_loads_without_image_sets(tmp_path: Path) -> None:
    ds = load_dataset(_write_dataset(tmp_path, n=3))
    assert len(ds) == 3 and ds.frame_key(2) == ("", 2)
    frame = ds.load_frame(1)
    assert len(frame.points) == 10 and frame.images == {}
    # cam z fwd = velo x, cam y down = velo -z, cam x right = velo -y: bottom (1, 1.5, 20) -> (20, -1, -1.5);
    # rotation_y 0 faces cam +x (right), which is yaw -pi/2 in the ego frame
    np.testing.assert_allclose(frame.boxes3d.xyz_lwh_yaw[0], [20, -1, -0.75, 3.9, 1.6, 1.5, -np.pi / 2], atol=1e-5)
    assert ds.check() == []


def test_splits_from_file_and_list(tmp_path: Path) -> None:
    path = _write_dataset(tmp_path, n=3, image_sets=True)
    assert load_dataset(path, split="val").ids == ["000001"]
    assert load_dataset(path, split="few").ids == ["000000"]
    with pytest.raises(ConfigError, match="unknown split 'train'"):
        load_dataset(path, split="train")


def _expect(tmp_path: Path, error: type, match: str, edit) -> None:
    ds = load_dataset(_write_dataset(tmp_path))
    edit(tmp_path / "training")
    with pytest.raises(error, match=match):
        ds.load_frame(0)
    problems = ds.check()
    assert len(problems) == 1 and isinstance(problems[0], error)
    assert "000000" in str(problems[0])


def test_bin_size_not_multiple_of_16(tmp_path: Path) -> None:
    _expect(tmp_path, CorruptFileError, r"000000\.bin: size 36 bytes is not a multiple of 16",
            lambda tr: np.zeros(9, np.float32).tofile(tr / "velodyne/000000.bin"))  # fmt: skip


def test_nan_points(tmp_path: Path) -> None:
    def edit(tr: Path) -> None:
        pts = np.zeros((5, 4), np.float32)
        pts[3, 1] = np.nan
        pts.tofile(tr / "velodyne/000000.bin")

    _expect(tmp_path, CorruptFileError, "non-finite value in point 3", edit)


def test_inf_points_found_by_read(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    pts = np.ones((7, 4), np.float32)
    pts[6, 0] = np.inf
    pts.tofile(path)
    with pytest.raises(CorruptFileError, match="x.bin: non-finite value in point 6"):
        read_points_bin(path)


def test_missing_calib_key(tmp_path: Path) -> None:
    _expect(tmp_path, CorruptFileError, "missing calibration key.*R0_rect",
            lambda tr: (tr / "calib/000000.txt").write_text(CALIB.replace("R0_rect", "R9_rect")))  # fmt: skip


def test_calib_wrong_value_count(tmp_path: Path) -> None:
    _expect(tmp_path, CorruptFileError, r"000000\.txt:2: R0_rect: expected 9 values, got 8",
            lambda tr: (tr / "calib/000000.txt").write_text(CALIB.replace("0 0 0 1\n", "0 0 1\n", 1)))  # fmt: skip


def test_missing_calib_file(tmp_path: Path) -> None:
    _expect(tmp_path, DataError, "file not found", lambda tr: (tr / "calib/000000.txt").unlink())


def test_label_wrong_field_count(tmp_path: Path) -> None:
    _expect(tmp_path, CorruptFileError, r"label_2/000000\.txt:2: expected 15 or 16 fields, got 14",
            lambda tr: (tr / "label_2/000000.txt").write_text(LABEL + LABEL.rsplit(" ", 1)[0] + "\n"))  # fmt: skip


def test_label_not_a_number(tmp_path: Path) -> None:
    _expect(tmp_path, CorruptFileError, r"000000\.txt:1: 'abc' is not a number",
            lambda tr: (tr / "label_2/000000.txt").write_text(LABEL.replace("1.60", "abc")))  # fmt: skip


def test_unknown_class(tmp_path: Path) -> None:
    _expect(tmp_path, UnknownClassError, r"000000\.txt:1: unknown class 'Spaceship'",
            lambda tr: (tr / "label_2/000000.txt").write_text(LABEL.replace("Car", "Spaceship")))  # fmt: skip


def test_unreadable_image(tmp_path: Path) -> None:
    def edit(tr: Path) -> None:
        (tr / "image_2").mkdir()
        (tr / "image_2/000000.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        shutil.copy(tr / "image_2/000000.png", tr / "image_2/000001.png")

    ds = load_dataset(_write_dataset(tmp_path))
    edit(tmp_path / "training")
    with pytest.raises(CorruptFileError, match=r"image_2/000000\.png: cannot decode image"):
        ds.load_frame(0)
    assert ds.load_frame(0, images=False).points is not None  # images are read only when asked for
    assert len(ds.check()) == 2  # both images reported, not only the first


def test_every_problem_reported(tmp_path: Path) -> None:
    ds = load_dataset(_write_dataset(tmp_path, n=3))
    tr = tmp_path / "training"
    np.zeros(9, np.float32).tofile(tr / "velodyne/000000.bin")
    (tr / "label_2/000000.txt").write_text(LABEL.replace("Car", "Spaceship"))
    (tr / "calib/000002.txt").write_text("P2: 1 2\n")
    messages = [str(e) for e in ds.check()]
    assert len(messages) == 3, messages
    assert any("000000.bin" in m for m in messages) and any("Spaceship" in m for m in messages)
    assert any("calib/000002.txt" in m for m in messages)


def test_unknown_option_and_format(tmp_path: Path) -> None:
    path = _write_dataset(tmp_path)
    spec = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**spec, "options": {"velodyn": "x"}}))
    with pytest.raises(ConfigError, match="did you mean 'velodyne'"):
        load_dataset(path)
    path.write_text(yaml.safe_dump({**spec, "format": "kiti"}))
    with pytest.raises(ConfigError, match="did you mean 'kitti'"):
        load_dataset(path)


def test_test_split_is_unlabelled(tmp_path: Path) -> None:
    path = _write_dataset(tmp_path)
    (tmp_path / "testing/velodyne").mkdir(parents=True)
    (tmp_path / "testing/calib").mkdir()
    np.zeros((3, 4), np.float32).tofile(tmp_path / "testing/velodyne/000007.bin")
    (tmp_path / "testing/calib/000007.txt").write_text(CALIB)
    ds = load_dataset(path, split="test")
    frame = ds.load_frame(0)
    assert frame.index == 7 and frame.boxes3d is None and len(frame.points) == 3
    assert len(ds.kitti_objects(0)) == 0


def test_format_label_lines_two_decimals() -> None:
    objs = _objs(["Pedestrian 0.5 1 -0.123 1 2 3 4 1.7 0.6 0.8 -1.25 1.5 9.999 0.5"])
    assert format_label_lines(objs) == [
        "Pedestrian 0.50 1 -0.12 1.00 2.00 3.00 4.00 1.70 0.60 0.80 -1.25 1.50 10.00 0.50"
    ]


def test_points_bin_mapped_copy_on_write(tmp_path: Path) -> None:
    path = tmp_path / "p.bin"
    big = np.full((3, 4), 1e30, np.float32)  # finite, but the sum of squares overflows: must not be an error
    big.tofile(path)
    pts = read_points_bin(path)
    np.testing.assert_array_equal(pts, big)
    pts[0, 0] = 7.0  # writable, and the file is untouched
    assert np.fromfile(path, np.float32)[0] == np.float32(1e30)
    path.write_bytes(b"")
    assert read_points_bin(path).shape == (0, 4)
    with pytest.raises(CorruptFileError, match="not a regular file"):
        read_points_bin(tmp_path)
    with pytest.raises(DataError, match="missing.bin: file not found"):
        read_points_bin(tmp_path / "missing.bin")


def test_real_boxes3d_back_to_label_rows(kitti: KittiDataset) -> None:
    """Ego-frame boxes -> KITTI rows gives the label values back (to float32 and upright-box precision)."""
    from perception.data.kitti_format import boxes3d_to_objects

    for i in range(len(kitti)):
        frame = kitti.load_frame(i, points=False, images=False)
        rows = kitti.kitti_objects(i)
        kept = rows[np.isin(rows.type, CLASSES)]
        back = boxes3d_to_objects(frame.boxes3d, frame.calibration, CLASSES)
        assert back.type.tolist() == kept.type.tolist()
        np.testing.assert_allclose(back.location, kept.location, atol=1e-4)
        np.testing.assert_allclose(back.dimensions_hwl, kept.dimensions_hwl, atol=1e-5)
        # boxes are kept upright in the ego frame, and camera y is ~0.5 deg off ego -z: yaw moves ~1e-4
        np.testing.assert_allclose(back.rotation_y, kept.rotation_y, atol=1e-3)
        np.testing.assert_allclose(back.bbox, kept.bbox)
        np.testing.assert_allclose(back.alpha, kept.alpha, atol=0.02)  # annotated alpha, rounded to 2 decimals
