"""KITTI text formats: label_2 / label_02 rows, calib files, and their link to ``Boxes3D``.

Label rows (object): ``type trunc occ alpha x1 y1 x2 y2 h w l x y z ry [score]`` with the
location the bottom centre of the box in rectified camera-0 coordinates (x right, y down,
z forward). Tracking rows (label_02) prepend ``frame track_id`` and write integers for
truncation. Values are kept as float64 so that read -> write reproduces every value; the
writer uses the devkit's decimals (2 for object labels, 6 for tracking), which makes the
round trip byte-exact on the official files.
"""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from perception.core import SE3, Boxes3D, Calibration, CameraIntrinsics
from perception.errors import CorruptFileError, DataError, UnknownClassError
from perception.files import atomic_write

KITTI_IMAGE_SIZE = (1242, 375)  # (width, height) used when no image is there to measure
RECT = "rect"  # rectified camera-0 frame, where KITTI labels live
_CALIB_ALIASES = {"R_rect": "R0_rect", "Tr_velo_cam": "Tr_velo_to_cam", "Tr_imu_velo": "Tr_imu_to_velo"}
_CALIB_SHAPES = {
    "P0": (3, 4),
    "P1": (3, 4),
    "P2": (3, 4),
    "P3": (3, 4),
    "R0_rect": (3, 3),
    "Tr_velo_to_cam": (3, 4),
    "Tr_imu_to_velo": (3, 4),
}
_REQUIRED_CALIB = ("P2", "R0_rect", "Tr_velo_to_cam")
# Devkit (evaluate_object.cpp) limits per difficulty easy, moderate, hard: a box counts when its
# 2D height is strictly above MIN_HEIGHT and occlusion / truncation do not exceed the maxima.
_MIN_HEIGHT_PX = (40.0, 25.0, 25.0)
_MAX_OCCLUSION = (0, 1, 2)
_MAX_TRUNCATION = (0.15, 0.30, 0.50)


@dataclass(frozen=True)
class KittiObjects:
    """The rows of one KITTI label file (or of one frame of a tracking file), column-wise."""

    type: np.ndarray  # (N,) str
    truncated: np.ndarray  # (N,) float64
    occluded: np.ndarray  # (N,) int64
    alpha: np.ndarray  # (N,) float64
    bbox: np.ndarray  # (N, 4) float64 x1 y1 x2 y2 pixels
    dimensions_hwl: np.ndarray  # (N, 3) float64 metres
    location: np.ndarray  # (N, 3) float64 bottom centre, rectified camera frame
    rotation_y: np.ndarray  # (N,) float64 radians about camera y
    score: np.ndarray | None = None  # (N,) float64, results only
    track_id: np.ndarray | None = None  # (N,) int64, tracking only
    frame: np.ndarray | None = None  # (N,) int64, tracking only
    line: np.ndarray | None = None  # (N,) int64 1-based line of each row in the file read (error messages)

    def __len__(self) -> int:
        return len(self.type)

    def __getitem__(self, index) -> KittiObjects:
        return KittiObjects(
            **{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index] for f in fields(self)}
        )

    @classmethod
    def empty(cls, tracking: bool = False) -> KittiObjects:
        z = np.zeros(0)
        return cls(np.zeros(0, "<U16"), z, z.astype(np.int64), z, np.zeros((0, 4)), np.zeros((0, 3)), np.zeros((0, 3)), z,
                   track_id=np.zeros(0, np.int64) if tracking else None, frame=np.zeros(0, np.int64) if tracking else None)  # fmt: skip


def parse_label_rows(rows: list[tuple[int, list[str]]], path: Path, tracking: bool) -> KittiObjects:
    """Parse split rows ``(line_number, fields)``; errors name the file and line."""
    lead = 2 if tracking else 0
    want = (15 + lead, 16 + lead)
    if not rows:
        return KittiObjects.empty(tracking)
    counts = {len(f) for _, f in rows}
    for line_no, f in rows:
        if len(f) not in want:
            raise CorruptFileError(f"expected {want[0]} or {want[1]} fields, got {len(f)}", path=path, line=line_no)
    if len(counts) > 1:
        raise CorruptFileError("rows mix files with and without a score column", path=path, line=rows[-1][0])
    try:
        num = np.array([[float(v) for v in f[:lead]] + [float(v) for v in f[lead + 1 :]] for _, f in rows])
    except ValueError:
        for line_no, f in rows:
            for v in f[:lead] + f[lead + 1 :]:
                try:
                    float(v)
                except ValueError:
                    raise CorruptFileError(f"{v!r} is not a number", path=path, line=line_no) from None
        raise
    if not np.isfinite(num).all():
        line_no = rows[int(np.nonzero(~np.isfinite(num).all(axis=1))[0][0])][0]
        raise CorruptFileError("non-finite value", path=path, line=line_no)
    n = num[:, lead:]
    return KittiObjects(
        type=np.array([f[lead] for _, f in rows], dtype=str),
        truncated=n[:, 0], occluded=n[:, 1].astype(np.int64), alpha=n[:, 2], bbox=n[:, 3:7],
        dimensions_hwl=n[:, 7:10], location=n[:, 10:13], rotation_y=n[:, 13],
        score=n[:, 14] if n.shape[1] == 15 else None,
        frame=num[:, 0].astype(np.int64) if tracking else None,
        track_id=num[:, 1].astype(np.int64) if tracking else None,
        line=np.array([line_no for line_no, _ in rows], dtype=np.int64),
    )  # fmt: skip


def kitti_difficulty(objs: KittiObjects) -> np.ndarray:
    """(N,) int64 devkit difficulty per row: 0 easy, 1 moderate, 2 hard, -1 none (too small,
    too occluded or truncated). Same test as the devkit's ``cleanData``: ``height <= MIN_HEIGHT``
    is ignored, so a 25.0 px box is not moderate."""
    height = np.abs(objs.bbox[:, 3] - objs.bbox[:, 1])
    out = np.full(len(objs), -1, np.int64)
    for level in (2, 1, 0):  # easiest level wins, so assign hardest first
        ok = (height > _MIN_HEIGHT_PX[level]) & (objs.occluded <= _MAX_OCCLUSION[level])
        out[ok & (objs.truncated <= _MAX_TRUNCATION[level])] = level
    return out


def read_rows(path: str | Path, sep: str | None = None) -> list[tuple[int, list[str]]]:
    """Non-empty lines of a text file, split, with 1-based line numbers."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise CorruptFileError(f"cannot read: {e}", path=path) from None
    return [(i + 1, [v.strip() for v in line.split(sep)]) for i, line in enumerate(text.splitlines()) if line.strip()]


def read_label_file(path: str | Path) -> KittiObjects:
    """Read an object ``label_2`` (or results) file."""
    return parse_label_rows(read_rows(path), Path(path), tracking=False)


def read_tracking_label_file(path: str | Path) -> KittiObjects:
    """Read a tracking ``label_02/<seq>.txt`` file: all frames, with ``frame`` and ``track_id``."""
    return parse_label_rows(read_rows(path), Path(path), tracking=True)


def format_label_lines(objs: KittiObjects, decimals: int | None = None) -> list[str]:
    """Rows as the devkit writes them: object files with 2 decimals, tracking files with 6."""
    tracking = objs.frame is not None
    d = decimals if decimals is not None else (6 if tracking else 2)
    lines = []
    for i in range(len(objs)):
        trunc = f"{int(objs.truncated[i])}" if tracking else f"{objs.truncated[i]:.{d}f}"
        values = [objs.alpha[i], *objs.bbox[i], *objs.dimensions_hwl[i], *objs.location[i], objs.rotation_y[i]]
        if objs.score is not None:
            values.append(objs.score[i])
        head = f"{objs.frame[i]} {objs.track_id[i]} " if tracking else ""
        lines.append(head + f"{objs.type[i]} {trunc} {objs.occluded[i]} " + " ".join(f"{v:.{d}f}" for v in values))
    return lines


def write_label_file(path: str | Path, objs: KittiObjects, decimals: int | None = None) -> None:
    """Write atomically; an empty set gives an empty file (a frame with no objects)."""
    lines = format_label_lines(objs, decimals)
    with atomic_write(path) as f:
        f.write("".join(line + "\n" for line in lines))


def read_calib_file(path: str | Path) -> dict[str, np.ndarray]:
    """Parse an object or tracking calib file into matrices keyed in object spelling.

    Accepts ``key: values`` and the original tracking release's ``key values`` lines, and the
    tracking names ``R_rect`` / ``Tr_velo_cam`` / ``Tr_imu_velo``.
    """
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    for line_no, parts in read_rows(path):
        key = parts[0].rstrip(":")
        key = _CALIB_ALIASES.get(key, key)
        if key not in _CALIB_SHAPES:
            continue
        shape = _CALIB_SHAPES[key]
        try:
            values = np.array([float(v) for v in parts[1:]])
        except ValueError:
            raise CorruptFileError(f"{key}: values are not all numbers", path=path, line=line_no) from None
        if values.size != shape[0] * shape[1]:
            raise CorruptFileError(
                f"{key}: expected {shape[0] * shape[1]} values, got {values.size}", path=path, line=line_no
            )
        out[key] = values.reshape(shape)
    missing = [k for k in _REQUIRED_CALIB if k not in out]
    if missing:
        raise CorruptFileError(f"missing calibration key(s) {', '.join(missing)}", path=path)
    return out


def _homogeneous(m: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[: m.shape[0], : m.shape[1]] = m
    return out


def kitti_calibration(raw: dict[str, np.ndarray], image_sizes: dict[str, tuple[int, int]] | None = None) -> Calibration:
    """Build a ``Calibration`` with the Velodyne frame as ego.

    Sensors: ``lidar`` (identity), ``rect`` (rectified camera 0, where labels live),
    ``image_2`` / ``image_3`` (colour cameras, from P2 / P3: ``P = K [I | t]``), ``imu``.
    """
    sizes = image_sizes or {}
    T_rect_from_velo = SE3(_homogeneous(raw["R0_rect"]) @ _homogeneous(raw["Tr_velo_to_cam"]))
    extrinsics = {"lidar": SE3.identity(), RECT: T_rect_from_velo.inverse()}
    cameras = {}
    for name, key in (("image_2", "P2"), ("image_3", "P3")):
        if key not in raw:
            continue
        K = raw[key][:, :3]
        t = np.linalg.solve(K, raw[key][:, 3])
        T_cam_from_rect = SE3.from_rt(np.eye(3), t)
        extrinsics[name] = (T_cam_from_rect @ T_rect_from_velo).inverse()
        w, h = sizes.get(name, KITTI_IMAGE_SIZE)
        cameras[name] = CameraIntrinsics(K, w, h)
    if "Tr_imu_to_velo" in raw:
        extrinsics["imu"] = SE3(_homogeneous(raw["Tr_imu_to_velo"]))
    return Calibration(extrinsics, cameras)


def objects_to_boxes3d(
    objs: KittiObjects,
    calib: Calibration,
    class_names: tuple[str, ...],
    class_map: dict[str, str | None],
    path: Path | None = None,
) -> tuple[Boxes3D, np.ndarray]:
    """Convert label rows to ego-frame boxes of the dataset's classes.

    ``class_map`` maps a KITTI type to one of ``class_names`` or to None (kept out of the
    boxes: DontCare, Misc, ...). Types absent from both raise ``UnknownClassError``.

    Returns:
        The boxes and the (N_kept,) row indices they came from.
    """
    index = {c: i for i, c in enumerate(class_names)}
    labels, keep = [], []
    for i, t in enumerate(objs.type):
        target = class_map.get(t, t if t in index else "__unknown__")
        if target == "__unknown__":
            line = None if objs.line is None else int(objs.line[i])
            known = sorted(set(index) | set(class_map))
            raise UnknownClassError(f"unknown class {str(t)!r}; known: {known}", path=path, line=line)
        if target is not None:
            labels.append(index[target])
            keep.append(i)
    keep_idx = np.array(keep, dtype=np.int64)
    sub = objs[keep_idx]
    T_ego_from_rect = calib.T_ego_from(RECT)
    h, w, l = sub.dimensions_hwl[:, 0], sub.dimensions_hwl[:, 1], sub.dimensions_hwl[:, 2]
    bottom = T_ego_from_rect.apply(sub.location)
    heading_cam = np.stack([np.cos(sub.rotation_y), np.zeros(len(sub)), -np.sin(sub.rotation_y)], axis=1)
    heading = T_ego_from_rect.apply_vectors(heading_cam)
    centre = bottom + np.outer(h / 2, [0.0, 0.0, 1.0])  # boxes stand upright in the ego frame
    yaw = np.arctan2(heading[:, 1], heading[:, 0])
    boxes = Boxes3D(
        np.column_stack([centre, l, w, h, yaw]),
        np.array(labels, dtype=np.int64),
        scores=sub.score,
        track_ids=sub.track_id,
        attributes={
            "truncated": sub.truncated,
            "occluded": sub.occluded,
            "alpha": sub.alpha,
            "box2d": sub.bbox,
            "difficulty": kitti_difficulty(sub),
        },
    )
    return boxes, keep_idx


def boxes3d_to_objects(
    boxes: Boxes3D, calib: Calibration, class_names: tuple[str, ...], camera: str = "image_2"
) -> KittiObjects:
    """Ego-frame boxes -> KITTI rows (bottom centre, rotation_y, alpha; 2D box from the projection
    unless the boxes carry a ``box2d`` attribute). Truncation/occlusion come from attributes or are 0."""
    from perception.core.geometry import project_boxes_to_rects

    n = len(boxes)
    T_rect_from_ego = calib.T(RECT, "ego")
    l, w, h = boxes.lwh[:, 0].astype(np.float64), boxes.lwh[:, 1].astype(np.float64), boxes.lwh[:, 2].astype(np.float64)
    bottom = T_rect_from_ego.apply(boxes.xyz.astype(np.float64) - np.outer(h / 2, [0.0, 0.0, 1.0]))
    yaw = boxes.yaw.astype(np.float64)
    heading = T_rect_from_ego.apply_vectors(np.stack([np.cos(yaw), np.sin(yaw), np.zeros(n)], axis=1))
    ry = np.arctan2(-heading[:, 2], heading[:, 0])
    alpha = ry - np.arctan2(bottom[:, 0], bottom[:, 2])
    alpha = (alpha + np.pi) % (2 * np.pi) - np.pi
    if "box2d" in boxes.attributes:
        bbox = np.asarray(boxes.attributes["box2d"], dtype=np.float64)
    elif camera in calib.cameras:
        bbox = project_boxes_to_rects(boxes.xyz_lwh_yaw, calib, camera)[0].astype(np.float64)
    else:
        bbox = np.zeros((n, 4))
    attrs = boxes.attributes
    return KittiObjects(
        type=np.array([class_names[i] for i in boxes.labels], dtype=str),
        truncated=np.asarray(attrs.get("truncated", np.zeros(n)), dtype=np.float64),
        occluded=np.asarray(attrs.get("occluded", np.zeros(n)), dtype=np.int64),
        alpha=alpha, bbox=bbox, dimensions_hwl=np.column_stack([h, w, l]), location=bottom, rotation_y=ry,
        score=None if boxes.scores is None else boxes.scores.astype(np.float64),
        track_id=boxes.track_ids,
    )  # fmt: skip


def with_frame(objs: KittiObjects, frame: int) -> KittiObjects:
    """Tag rows with a frame index (and track ids -1 where absent), ready for a tracking file."""
    tid = objs.track_id if objs.track_id is not None else -np.ones(len(objs), np.int64)
    return replace(objs, frame=np.full(len(objs), frame, np.int64), track_id=tid)


def split_folder(root: Path, split: str | None) -> Path:
    """``root/testing`` for the test split, else ``root/training``; a clear error when absent."""
    folder = root / ("testing" if split == "test" else "training")
    if not folder.is_dir():
        raise DataError("dataset folder not found", path=folder)
    return folder


def write_calib_file(path: str | Path, raw: dict[str, np.ndarray]) -> None:
    """Write matrices (object spelling keys) as ``key: v v v ...`` lines, 12 significant digits."""
    lines = [f"{k}: " + " ".join(f"{v:.12e}" for v in np.asarray(m, dtype=np.float64).ravel()) for k, m in raw.items()]
    with atomic_write(path) as f:
        f.write("\n".join(lines) + "\n")


def read_points_bin(path: str | Path, channels: int = 4) -> np.ndarray:
    """Read a Velodyne ``.bin`` as (N, channels) float32; a bad size or a NaN/inf is a CorruptFileError.

    The file is mapped copy-on-write instead of copied: the array is writable and independent of
    the file (writes stay private), and the one pass that checks every value (a BLAS sum of
    squares, non-finite iff some value is NaN/inf or, harmlessly, on overflow) is what pages the
    data in. This makes loading faster than ``np.fromfile`` (benchmarks/bench_loading.py). Files
    are replaced by rename (perception.files), never truncated in place, so a mapping stays valid.
    """
    try:
        fd = os.open(path, os.O_RDONLY)  # no Python file object: this runs once per sweep
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except OSError as e:
        raise CorruptFileError(f"cannot read: {e.strerror or e}", path=path) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CorruptFileError("not a regular file", path=path)
        size = info.st_size
        if size % (4 * channels):
            raise CorruptFileError(
                f"size {size} bytes is not a multiple of {channels * 4} (N x {channels} float32)", path=path
            )
        try:
            buffer = mmap.mmap(fd, size, access=mmap.ACCESS_COPY) if size else bytearray()
        except (OSError, ValueError):  # a file system without mmap support: plain read
            buffer = bytearray(os.read(fd, size))
    finally:
        os.close(fd)
    raw = np.frombuffer(buffer, np.float32)
    points = raw.reshape(-1, channels)
    with np.errstate(over="ignore"):
        finite = np.isfinite(np.dot(raw, raw))
    if not finite:
        ok = np.isfinite(points).all(axis=1)
        if not ok.all():
            raise CorruptFileError(f"non-finite value in point {int(np.argmin(ok))}", path=path)
    return points


def write_points_bin(path: str | Path, points: np.ndarray) -> None:
    with atomic_write(path, "wb") as f:
        np.ascontiguousarray(points, dtype=np.float32).tofile(f)
