"""The ``--data`` of a 2D run: a dataset YAML of ours (converted once, cached) or a YOLO data YAML (checked).

Checking before ultralytics sees the data turns its warnings and silently skipped files into one
error naming the file and line: a split folder that does not exist, a split with no images, an
image without a label file (an image with no objects has an empty one), a label row that is not
``class cx cy w h`` with a known class and coordinates in [0, 1].
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from perception.config import load_yaml
from perception.errors import ConfigError, CorruptFileError, DataError

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
_TOLERANCE = 1e-6  # normalised coordinates written with 6 decimals may round past 1 by this much


def resolve_data(data: str | Path, cache: str | Path) -> Path:
    """The YOLO data YAML for ``data``, checked.

    Args:
        data: a dataset YAML (has ``format:``), converted into ``cache/<stem>-<hash>/`` unless an
            identical conversion is there; or a YOLO data YAML (has ``names:`` and ``train:``).
        cache: folder for conversions (e.g. ``runs/yolo_data``).
    """
    data = Path(data)
    raw = load_yaml(data)
    if "format" not in raw:
        check_yolo_data(data)
        return data
    from perception.data.convert_yolo import convert_to_yolo

    digest = hashlib.sha1(data.resolve().read_bytes() + str(data.resolve()).encode()).hexdigest()[:10]
    out = Path(cache) / f"{data.stem}-{digest}"
    done = out / ".complete"  # written after the last split: an interrupted conversion is redone
    if not done.is_file():
        for dataset in _train_val(data):
            convert_to_yolo(dataset, out)
        done.touch()
    check_yolo_data(out / "data.yaml")
    return out / "data.yaml"


def _train_val(data: Path) -> list:
    """The ``train`` and ``val`` splits of a dataset YAML, or its default split when it has neither."""
    from perception.data.registry import load_dataset

    try:
        return [load_dataset(data, split="train"), load_dataset(data, split="val")]
    except ConfigError:  # the loader knows no such split
        return [load_dataset(data)]


def check_yolo_data(path: str | Path) -> dict[str, Any]:
    """Read and check a YOLO data YAML and every label file it points to.

    Returns:
        The YAML mapping with ``names`` as a list and ``path`` resolved.
    """
    path = Path(path)
    raw = load_yaml(path)
    for key in ("names", "train", "val"):
        if not raw.get(key):
            raise ConfigError(
                f"missing required key {key!r} (a YOLO data YAML needs path, train, val, names)", path=path
            )
    names = raw["names"]
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    root = Path(str(raw.get("path") or "."))
    root = root if root.is_absolute() else (path.parent / root).resolve()
    for key in ("train", "val", "test"):
        for entry in _as_list(raw.get(key)):
            for image in split_images(root / entry, yaml_path=path):
                check_label_file(label_path(image), len(names))
    return {**raw, "names": names, "path": str(root)}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def split_images(entry: Path, yaml_path: Path | None = None) -> list[Path]:
    """Images of one split: a folder (recursive) or a text file listing image paths."""
    if entry.is_dir():
        images = sorted(p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    elif entry.is_file() and entry.suffix == ".txt":
        lines = [line.strip() for line in entry.read_text().splitlines() if line.strip()]
        images = [Path(x) if Path(x).is_absolute() else entry.parent / x for x in lines]
    else:
        raise DataError(f"split path {entry} does not exist", path=yaml_path)
    if not images:
        raise DataError("no images (looked for " + ", ".join(IMAGE_SUFFIXES) + ")", path=entry)
    missing = [p for p in images if not p.exists()]
    if missing:
        raise DataError(f"image not found ({len(missing)} of {len(images)} missing)", path=missing[0])
    return images


def label_path(image: Path) -> Path:
    """ultralytics' rule: the last ``/images/`` of the path becomes ``/labels/``, the suffix ``.txt``."""
    parts = list(image.parts)
    if "images" not in parts:
        raise DataError("image is not under an 'images' folder, so it has no YOLO label path", path=image)
    i = len(parts) - 1 - parts[::-1].index("images")
    parts[i] = "labels"
    return Path(*parts).with_suffix(".txt")


def check_label_file(path: Path, num_classes: int) -> int:
    """Check one label file; returns its number of boxes."""
    if not path.is_file():
        raise DataError("label file missing for its image (an image without objects needs an empty file)", path=path)
    rows = 0
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise CorruptFileError(f"expected 5 fields 'class cx cy w h', got {len(fields)}", path=path, line=line_no)
        try:
            cls, values = int(fields[0]), [float(v) for v in fields[1:]]
        except ValueError:
            raise CorruptFileError(f"not numbers: {line.strip()!r}", path=path, line=line_no) from None
        if not 0 <= cls < num_classes:
            raise CorruptFileError(f"class id {cls} outside 0..{num_classes - 1}", path=path, line=line_no)
        cx, cy, w, h = values
        lo, hi = -_TOLERANCE, 1 + _TOLERANCE
        inside = all(lo <= v <= hi for v in values) and w > 0 and h > 0
        if not inside or cx - w / 2 < lo or cx + w / 2 > hi or cy - h / 2 < lo or cy + h / 2 > hi:
            raise CorruptFileError(f"box {values} is not inside the normalised image [0, 1]", path=path, line=line_no)
        rows += 1
    return rows
