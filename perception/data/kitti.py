"""KITTI 3D object detection: ``training/`` and ``testing/`` folders -> ``Frame``s.

Exercised by ``perception data info datasets/kitti.yaml``. Layout under the YAML's ``root``::

    training/velodyne/000000.bin     N x 4 float32 (x, y, z, reflectance), Velodyne frame
    training/image_2/000000.png      left colour camera
    training/calib/000000.txt        P0-P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo
    training/label_2/000000.txt      one object per line (see kitti_format)
    testing/...                      the same without label_2
    ImageSets/{train,val,test}.txt   frame ids, one per line

The ego frame is the Velodyne frame (x forward, y left, z up). Split ``test`` reads
``testing/``, every other split ``training/``. A split names an id file (relative to root) or
lists ids; when the dataset has no ``ImageSets`` folder at all (e.g. written by
``perception data synth``) or no split is chosen, every frame of the folder is used.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from perception.config import check_keys
from perception.core import Boxes2D, Frame, PointCloud
from perception.data.base import DatasetSpec, DriveDataset
from perception.data.kitti_format import (
    KITTI_IMAGE_SIZE,
    KittiObjects,
    kitti_calibration,
    objects_to_boxes3d,
    read_calib_file,
    read_label_file,
    read_points_bin,
    read_rows,
    split_folder,
)
from perception.errors import ConfigError, CorruptFileError, DataError

_OPTIONS = {"velodyne": "velodyne", "cameras": ["image_2"]}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG header (24 bytes, no decoding); None when absent or not a PNG."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != _PNG_MAGIC:
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 BGR; a missing file is a DataError, an undecodable one a CorruptFileError."""
    import cv2

    if not path.is_file():
        raise DataError("image not found", path=path)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise CorruptFileError("cannot decode image", path=path)
    return image


def read_id_file(path: Path) -> list[str]:
    """Frame ids of an ImageSets file (``000042`` per line)."""
    ids = []
    for line_no, parts in read_rows(path):
        if len(parts) != 1 or not parts[0].isdigit():
            raise CorruptFileError(f"expected one frame id per line, got {' '.join(parts)!r}", path=path, line=line_no)
        ids.append(parts[0])
    return ids


def collect(problems: list[DataError], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """Call ``fn(*args, **kwargs)``; a DataError is appended to ``problems`` instead of raised. True on success."""
    try:
        fn(*args, **kwargs)
    except DataError as e:
        problems.append(e)
        return False
    return True


def resolve_options(spec: DatasetSpec, defaults: dict[str, Any]) -> dict[str, Any]:
    """Loader options from the YAML over ``defaults``; an unknown key is a ConfigError."""
    check_keys(spec.options, defaults, where=f"{spec.source or 'dataset'}: options")
    return {**defaults, **spec.options}


class KittiDataset(DriveDataset):
    """Random access to KITTI object frames, with the raw label rows via ``kitti_objects``.

    Options: ``velodyne`` (folder of .bin files, e.g. ``velodyne_reduced``), ``cameras``
    (image folders to read when ``images=True``; missing folders are skipped).
    """

    name = "kitti"

    def __init__(self, spec: DatasetSpec, split: str | None = None):
        super().__init__(spec, split)
        self.options = resolve_options(spec, _OPTIONS)
        self.folder = split_folder(spec.root, self.split)
        self.ids = self._split_ids()
        self.labelled = (self.folder / "label_2").is_dir()

    def _split_ids(self) -> list[str]:
        entry = self.spec.splits.get(self.split) if self.split else None
        if self.split and entry is None and self.spec.splits:
            raise ConfigError(
                f"unknown split {self.split!r}; splits: {sorted(self.spec.splits)}", path=self.spec.source
            )
        if isinstance(entry, list):
            return [f"{int(i):06d}" for i in entry]
        if entry is not None and (self.spec.root / "ImageSets").is_dir():
            return read_id_file(self.spec.root / str(entry))
        for sub, suffix in (
            (self.options["velodyne"], ".bin"),
            ("image_2", ".png"),
            ("label_2", ".txt"),
            ("calib", ".txt"),
        ):
            ids = sorted(p.stem for p in (self.folder / sub).glob(f"*{suffix}"))
            if ids:
                return ids
        raise DataError("no frames found (looked for velodyne, image_2, label_2, calib files)", path=self.folder)

    def __len__(self) -> int:
        return len(self.ids)

    def frame_key(self, i: int) -> tuple[str, int]:
        return "", int(self.ids[i])

    def path(self, sub: str, i: int, suffix: str) -> Path:
        """``<folder>/<sub>/<id><suffix>`` of frame ``i``."""
        return self.folder / sub / f"{self.ids[i]}{suffix}"

    def kitti_objects(self, i: int) -> KittiObjects:
        """Every label row of frame ``i`` (DontCare, Van, Misc included); empty for unlabelled data."""
        return read_label_file(self.path("label_2", i, ".txt")) if self.labelled else KittiObjects.empty()

    def load_points(self, i: int) -> PointCloud:
        return PointCloud(read_points_bin(self.path(self.options["velodyne"], i, ".bin")))

    def load_frame(self, i: int, *, points: bool = True, images: bool = True) -> Frame:
        loaded = {c: read_image(self.path(c, i, ".png")) for c in self._cameras()} if images else {}
        sizes = {c: (im.shape[1], im.shape[0]) for c, im in loaded.items()} or self._image_sizes(i)
        calib = kitti_calibration(read_calib_file(self.path("calib", i, ".txt")), sizes)
        boxes3d, boxes2d = None, {}
        if self.labelled:
            path = self.path("label_2", i, ".txt")
            boxes3d, _ = objects_to_boxes3d(read_label_file(path), calib, self.class_names, self.spec.class_map, path)
            boxes2d = {"image_2": Boxes2D(boxes3d.attributes["box2d"], boxes3d.labels)}
        seq, index = self.frame_key(i)
        return Frame(
            dataset=self.name, sequence=seq, index=index, timestamp_s=float("nan"), class_names=self.class_names,
            points=self.load_points(i) if points else None, images=loaded, calibration=calib,
            boxes3d=boxes3d, boxes2d=boxes2d,
        )  # fmt: skip

    def check(self) -> list[DataError]:
        """Read every file of every frame (calib, labels and classes, points, images); collect every problem."""
        problems: list[DataError] = []
        for i in range(len(self)):
            if collect(problems, read_calib_file, self.path("calib", i, ".txt")):
                collect(problems, self.load_frame, i, points=False, images=False)
            elif self.labelled:
                collect(problems, read_label_file, self.path("label_2", i, ".txt"))
            collect(problems, self.load_points, i)
            for camera in self._cameras():
                collect(problems, read_image, self.path(camera, i, ".png"))
        return problems

    def _cameras(self) -> list[str]:
        return [c for c in self.options["cameras"] if (self.folder / c).is_dir()]

    def _image_sizes(self, i: int) -> dict[str, tuple[int, int]]:
        sizes = {c: png_size(self.path(c, i, ".png")) for c in ("image_2", "image_3")}
        return {c: s or KITTI_IMAGE_SIZE for c, s in sizes.items()}
