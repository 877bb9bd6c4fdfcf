"""``perception val --task detect2d``: mAP50, mAP50-95, precision / recall / F1, confusion matrix and
KITTI 2D AP (easy / moderate / hard, our devkit port) of a YOLO checkpoint, with plots.

ultralytics' validator gives the COCO-style numbers and writes the PR / F1 / P / R curves and the
confusion matrix (PNG) into the run folder; KITTI AP runs our evaluator on the same images with
ground truth from the dataset (truncation and occlusion included when it has them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from perception.config import load_yaml
from perception.core import Boxes2D
from perception.data.kitti_format import KittiObjects
from perception.errors import ConfigError
from perception.files import atomic_write
from perception.models.yolo.data import check_yolo_data, label_path, resolve_data, split_images
from perception.models.yolo.model import class_names, load_yolo
from perception.models.yolo.predictor import YoloPredictor


def validate_yolo(weights: str | Path, data: str | Path, out: str | Path, *, split: str = "val",
                  imgsz: int | None = None, batch: int = 16, device: str = "", kitti: bool = True) -> dict[str, Any]:  # fmt: skip
    """Evaluate ``weights`` on the ``split`` images of ``data`` (dataset YAML of ours or YOLO YAML).

    Writes ``out/metrics.json`` and ultralytics' plots (``PR_curve.png``, ``F1_curve.png``,
    ``confusion_matrix.png`` ...) into ``out``.

    Returns:
        ``{"mAP50", "mAP50-95", "precision", "recall", "F1"}`` (0-1), ``per_class`` (same keys by
        class), ``confusion_matrix`` (rows predicted, columns true; last index background) and,
        when the classes are KITTI classes, ``kitti_2d`` (AP R40 and R11 in percent).
    """
    out = Path(out).resolve()
    yolo = load_yolo(weights)
    data_yaml = resolve_data(data, out.parent / "yolo_data")
    imgsz = imgsz or yolo.overrides.get("imgsz") or 640
    dev = device or ("0" if _cuda() else "cpu")
    m = yolo.val(data=str(data_yaml), split=split, imgsz=imgsz, batch=batch, device=dev, plots=True,
                 project=str(out.parent), name=out.name, exist_ok=True, verbose=False)  # fmt: skip
    names = class_names(yolo)
    result: dict[str, Any] = {**_summary(m.box.map50, m.box.map, m.box.mp, m.box.mr), "per_class": {}}
    for i, c in enumerate(m.box.ap_class_index.tolist()):
        result["per_class"][names[c]] = _summary(m.box.ap50[i], m.box.ap[i], m.box.p[i], m.box.r[i])
    result["confusion_matrix"] = m.confusion_matrix.matrix.astype(int).tolist()
    if kitti:
        kitti_classes = tuple(c for c in names if _is_kitti_class(c))
        if kitti_classes:
            predictor = YoloPredictor(weights, dev, conf=0.01, max_det=100, imgsz=imgsz)
            result["kitti_2d"] = kitti_2d_ap(predictor, _ground_truth(data, data_yaml, split, names), kitti_classes)
    with atomic_write(out / "metrics.json") as f:
        json.dump(result, f, indent=2)
    return result


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _summary(map50: float, map5095: float, p: float, r: float) -> dict[str, float]:
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {
        "mAP50": float(map50),
        "mAP50-95": float(map5095),
        "precision": float(p),
        "recall": float(r),
        "F1": float(f1),
    }


def _is_kitti_class(name: str) -> bool:
    from perception.eval.kitti import min_overlap

    try:
        min_overlap("bbox", name)
    except ConfigError:
        return False
    return True


def kitti_2d_ap(predictor: YoloPredictor, samples: Iterator[tuple[np.ndarray, KittiObjects]],
                classes: tuple[str, ...]) -> dict[str, dict[str, dict[str, float]]]:  # fmt: skip
    """KITTI 2D box AP over ``(BGR image, ground-truth rows)`` pairs.

    Returns:
        ``{"R40": {class: {easy, moderate, hard}}, "R11": {...}}`` in percent.
    """
    from perception.eval.kitti import evaluate_kitti

    gt, dt = [], []
    for image, objects in samples:
        (boxes,), _ = predictor.predict_images([image])
        gt.append(objects)
        dt.append(boxes2d_to_kitti(boxes, predictor.class_names))
    result = evaluate_kitti(gt, dt, classes=classes, metrics=("bbox",))
    return {"R40": result.ap_r40["bbox"], "R11": result.ap_r11["bbox"]}


def boxes2d_to_kitti(boxes: Boxes2D, names: tuple[str, ...]) -> KittiObjects:
    """2D detections as KITTI result rows: the 3D fields hold the devkit's "unknown" values
    (dimensions -1, location -1000, rotation -10, alpha -10), so only 2D metrics use them."""
    n = len(boxes)
    return KittiObjects(
        type=np.array([names[i] for i in boxes.labels], dtype="<U16"), truncated=np.zeros(n),
        occluded=np.zeros(n, np.int64), alpha=np.full(n, -10.0), bbox=boxes.xyxy.astype(np.float64),
        dimensions_hwl=np.full((n, 3), -1.0), location=np.full((n, 3), -1000.0), rotation_y=np.full(n, -10.0),
        score=np.ones(n) if boxes.scores is None else boxes.scores.astype(np.float64),
    )  # fmt: skip


def _ground_truth(
    data: str | Path, data_yaml: Path, split: str, names: tuple[str, ...]
) -> Iterator[tuple[np.ndarray, KittiObjects]]:
    """Images and KITTI ground truth: the label file itself for KITTI-like datasets (keeps
    DontCare, Van, truncation, occlusion), else the YOLO labels (truncation and occlusion 0)."""
    if "format" in load_yaml(data):
        from perception.data.registry import load_dataset

        try:
            dataset = load_dataset(data, split=split)
        except ConfigError:  # a dataset without that split was converted whole (see resolve_data)
            dataset = load_dataset(data)
        if hasattr(dataset, "kitti_objects"):
            for i in range(len(dataset)):
                frame = dataset.load_frame(i, points=False, images=True)
                if "image_2" in frame.images:
                    yield frame.images["image_2"], dataset.kitti_objects(i)
            return
    info = check_yolo_data(data_yaml)
    for image_path in split_images(Path(info["path"]) / info[split]):
        image = cv2.imread(str(image_path))
        yield image, _yolo_labels_to_kitti(label_path(image_path), image.shape, names)


def _yolo_labels_to_kitti(path: Path, shape: tuple[int, ...], names: tuple[str, ...]) -> KittiObjects:
    rows = np.loadtxt(path, ndmin=2) if path.stat().st_size else np.zeros((0, 5))
    h, w = shape[:2]
    cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
    xyxy = np.column_stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
    objs = boxes2d_to_kitti(Boxes2D(xyxy, rows[:, 0].astype(np.int64)), names)
    return replace(objs, score=None)  # ground truth has no score column
