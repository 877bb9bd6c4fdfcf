"""One call from frames and predictions to the dataset's own detection metric.

``evaluate_detections`` picks the metric from ``Frame.dataset``: KITTI AP for ``kitti`` (and, in
BEV / 3D through a virtual camera, for datasets without an official metric such as ``synthetic``),
nuScenes NDS, Waymo AP / APH, Argoverse 2 CDS. Only the frame's classes that the metric knows are
evaluated. Exercised by ``perception val`` and ``perception demo``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.core import Boxes3D, Frame, Predictions
from perception.errors import ConfigError, ShapeError


@dataclass(frozen=True)
class DetectionReport:
    """``metric`` name, ``summary`` flat numbers for loggers, ``table`` for the terminal, ``result``
    the metric's own result object (curves for plots)."""

    metric: str
    summary: dict[str, float]
    table: str
    result: object


def _known(class_names: tuple[str, ...], known: tuple[str, ...], metric: str) -> tuple[str, ...]:
    lower = {k.lower() for k in known}
    classes = tuple(c for c in class_names if c.lower() in lower)
    if not classes:
        raise ConfigError(
            f"none of the classes {list(class_names)} is evaluated by the {metric} metric (knows {list(known)})"
        )
    return classes


def _kitti(frames, boxes, dataset, metrics):
    from perception.eval.kitti import (
        KITTI_CLASSES,
        boxes_to_kitti,
        evaluate_kitti,
        format_kitti_table,
        frame_to_kitti_gt,
    )

    gt = [frame_to_kitti_gt(f, dataset, i) for i, f in enumerate(frames)]
    dt = [boxes_to_kitti(b, f) for b, f in zip(boxes, frames)]
    classes = _known(frames[0].class_names, KITTI_CLASSES, "KITTI")  # compared case-insensitively
    res = evaluate_kitti(gt, dt, classes=classes, metrics=metrics)
    return DetectionReport("kitti", res.summary(), format_kitti_table(res), res)


def evaluate_detections(
    frames: list[Frame], predictions: list[Predictions | Boxes3D], dataset: object | None = None
) -> DetectionReport:
    """Evaluate per-frame 3D predictions against the frames' ground truth.

    Args:
        frames: ground-truth frames (``boxes3d`` set), all of one dataset.
        predictions: one ``Predictions`` (or ``Boxes3D`` with scores) per frame, ego frame.
        dataset: the ``DriveDataset`` the frames came from, for KITTI label rows (DontCare, Van)
            via ``dataset.kitti_objects(i)``; frame ``i`` must be dataset index ``i``.
    """
    if len(frames) != len(predictions) or not frames:
        raise ShapeError(f"{len(frames)} frames but {len(predictions)} predictions (need one per frame, at least one)")
    boxes = [p.boxes3d if isinstance(p, Predictions) else p for p in predictions]
    boxes = [b if b is not None else Boxes3D.empty().replace(scores=np.zeros(0, np.float32)) for b in boxes]
    gt = [f.boxes3d if f.boxes3d is not None else Boxes3D.empty() for f in frames]
    names, kind = frames[0].class_names, frames[0].dataset
    if kind == "nuscenes":
        from perception.eval.nuscenes import NUSCENES_CLASSES, evaluate_nuscenes, format_nuscenes_table

        res = evaluate_nuscenes(gt, boxes, names, classes=_known(names, NUSCENES_CLASSES, "nuScenes"))
        return DetectionReport("nuscenes", res.summary(), format_nuscenes_table(res), res)
    if kind == "waymo":
        from perception.eval.waymo import IOU_THRESHOLDS, evaluate_waymo, format_waymo_table

        res = evaluate_waymo(gt, boxes, names, classes=_known(names, tuple(IOU_THRESHOLDS), "Waymo"))
        return DetectionReport("waymo", res.summary(), format_waymo_table(res), res)
    if kind == "argoverse2":
        from perception.eval.argoverse2 import AV2_CLASSES, evaluate_av2, format_av2_table

        res = evaluate_av2(gt, boxes, names, classes=_known(names, AV2_CLASSES, "Argoverse 2"))
        return DetectionReport("argoverse2", res.summary(), format_av2_table(res), res)
    return _kitti(frames, boxes, dataset, ("bbox", "bev", "3d") if kind == "kitti" else ("bev", "3d"))
